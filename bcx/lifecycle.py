"""What every long-running process shares: stop signals and reconnect back-off."""

from __future__ import annotations

import logging
import random
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set ``stop`` (warm shutdown: finish the batch, flush, exit 0); a second
    signal exits at once (cold shutdown). Call from the main thread, inside ``run()``."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("%s: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


class Backoff:
    """Exponential back-off with full jitter and a cap: delay n is uniform in
    ``[initial * 2**n / 2, min(cap, initial * 2**n)]``."""

    def __init__(self, initial: float, cap: float, rng: random.Random | None = None):
        self.initial = initial
        self.cap = max(cap, initial)
        self.failures = 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.initial * (2 ** min(self.failures, 32)))
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
