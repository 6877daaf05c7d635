"""The log notifier: one JSON line per event in a local file."""

from __future__ import annotations

import os

from bcx.events import TriggerEvent
from bcx.server.notifiers.base import DeliveryError


class LogNotifier:
    """Appends one JSON line per event. The file is opened per event (events are rare) so
    logrotate needs no signal, and fsynced so a delivered event survives a power cut."""

    name = "log"

    def __init__(self, path: str):
        self.path = path

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(payload + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc}") from None

    def close(self) -> None:
        pass
