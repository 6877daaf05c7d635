"""Gap fill: trades the websocket missed are fetched from the venue's REST API.

:class:`HoleWatch` runs on the feed thread and costs a dict look-up per trade: it remembers
each symbol's last trade and reports a :class:`~bcx.rest.Hole` when the next one skips trade
ids (venues that number trades per symbol) or, where ids say nothing (Bitfinex's are global,
Kraken v1 has none), when it is the first trade of a new connection. :class:`Backfiller` is
one thread per exchange that takes the holes, pages the venue's trades endpoint through
:class:`~bcx.rest.client.RestClient` (rate limits, 429 and Retry-After, back-off) and hands
what it found to the writer like live trades: a trade fetched twice, or also seen live, is
the same sorted-set member and is stored once. Never on the websocket thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from types import ModuleType

from bcx.exchanges.base import MalformedFrame
from bcx.rest import Hole
from bcx.rest.client import RestClient, RestError
from bcx.ticks import Trade
from bcx.timeutil import now_ms
from bcx.tracker.stats import FeedStats
from bcx.tracker.writer import Writer

log = logging.getLogger(__name__)

# Pages fetched for one hole at most (a runaway cursor must end).
MAX_PAGES = 1000
# Venues whose trade ids count up by one per trade of a symbol.
CONTIGUOUS_IDS = frozenset({"coinbase", "binance"})


class HoleWatch:
    """The feed thread's view of each symbol's trade sequence."""

    def __init__(self, exchange: str):
        self.exchange = exchange
        self.contiguous = exchange in CONTIGUOUS_IDS
        self.last: dict[str, Trade] = {}
        self.fresh: set[str] = set()  # symbols not seen yet on this connection

    def new_connection(self) -> None:
        self.fresh = set(self.last)

    def observe(self, trades: list[Trade]) -> list[Hole]:
        holes = []
        for trade in trades:
            last = self.last.get(trade.symbol)
            if last is None:
                self.last[trade.symbol] = trade
                continue
            if self.contiguous and trade.id.isdigit() and last.id.isdigit():
                if int(trade.id) <= int(last.id):
                    continue
                if int(trade.id) > int(last.id) + 1:
                    holes.append(self._hole(last, trade))
            elif trade.ms < last.ms:
                continue
            elif trade.symbol in self.fresh and trade.ms > last.ms:
                holes.append(self._hole(last, trade))
            self.fresh.discard(trade.symbol)
            self.last[trade.symbol] = trade
        return holes

    def _hole(self, last: Trade, trade: Trade) -> Hole:
        return Hole(self.exchange, trade.symbol, last.ms, last.id, trade.ms, trade.id,
                    found_ms=now_ms())


class Backfiller:
    """One exchange's gap-fill thread."""

    def __init__(self, venue: ModuleType, client: RestClient, writer: Writer, stats: FeedStats,
                 max_age_s: float):
        self.venue = venue
        self.client = client
        self.writer = writer
        self.stats = stats
        self.max_age_ms = int(max_age_s * 1000)
        self.holes: queue.SimpleQueue[Hole | None] = queue.SimpleQueue()
        self.stop_event = client.stop
        self.busy = threading.Event()  # set while a hole is being fetched
        self.thread = threading.Thread(target=self._run, name=f"backfill-{stats.exchange}",
                                       daemon=True)

    def offer(self, hole: Hole) -> None:
        """Queue a hole (feed thread: never blocks)."""
        self.stats.backfill_gaps += 1
        self.holes.put(hole)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.holes.put(None)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def idle(self) -> bool:
        return self.holes.empty() and not self.busy.is_set()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            hole = self.holes.get()
            if hole is None:
                return
            self.busy.set()
            try:
                self._fill(hole)
            finally:
                self.busy.clear()

    def _fill(self, hole: Hole) -> None:
        name = f"{hole.exchange}:{hole.symbol}"
        if now_ms() - hole.after_ms > self.max_age_ms:
            self.stats.gaps_open += 1
            log.warning("%s: gap after trade %s older than backfill_max_age: left open", name,
                        hole.after_id)
            return
        started = time.monotonic()
        found = 0
        try:
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                body, headers = self.client.fetch(self.venue.trades_request(hole, cursor))
                trades, cursor = self.venue.read_trades(hole, body, headers)
                if trades:
                    self.writer.submit(list(trades))
                    found += len(trades)
                    self.stats.backfilled += len(trades)
                if cursor is None:
                    break
        except (RestError, MalformedFrame) as exc:
            self.stats.gaps_open += 1
            log.warning("%s: gap after trade %s not filled (%d trades fetched): %s", name,
                        hole.after_id, found, exc)
            return
        if found == 0 and hole.numeric() is not None:
            self.stats.gaps_open += 1
            log.warning("%s: the venue has no trades between %s and %s: gap left open", name,
                        hole.after_id, hole.before_id)
            return
        log.info("%s: gap between trades %s and %s filled with %d trades in %.2fs", name,
                 hole.after_id, hole.before_id, found, time.monotonic() - started)
