"""The tracker's counters: per-exchange feed stats, receipt-to-stored latency and the record
of ticks dropped while Redis was unreachable.

Feed counters are plain ints bumped by their feed's thread alone and read by the writer
thread; under the GIL such reads are atomic, so the hot path takes no lock. Gap deltas are the
exception (they are swapped out by the reader), so they sit behind a lock; gaps are rare.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bcx.exchanges.gate import REASONS
from bcx.keys import series_id
from bcx.store.trackerstats import COUNTER_MAX, saturated
from bcx.ticks import Tick, Trade
from bcx.timeutil import iso_ms, now_ms

__all__ = ["COUNTER_MAX", "DropLog", "FeedStats", "Latency", "saturated"]


@dataclass
class FeedStats:
    """One exchange connection loop's counters, as written to ``keys.tracker_stats(ex)``."""

    exchange: str
    url: str = ""
    connected: bool = False
    frames: int = 0
    ticks: int = 0
    trades: int = 0
    parse_errors: int = 0
    gaps: int = 0
    reconnects: int = 0
    silences: int = 0
    pings: int = 0
    venue_errors: int = 0
    # Gap fill (bcx.tracker.backfill): holes found in the trades, trades fetched into them,
    # and holes that could not be filled (too old, the venue failed or had nothing).
    backfill_gaps: int = 0
    backfilled: int = 0
    gaps_open: int = 0
    # Ticks and values the plausibility gate refused: in all, and per reason (its keys never
    # change, so the writer thread may read it while the feed thread counts).
    rejected: int = 0
    rejected_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    consecutive_failures: int = 0
    feed_down: bool = False
    last_frame_ms: int = 0
    connected_since_ms: int = 0
    last_error: str = ""
    started_ms: int = field(default_factory=now_ms)
    _gap_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pending_gaps: Counter[str] = field(default_factory=Counter, repr=False)

    def add_gaps(self, gaps: Iterable[tuple[str, int]]) -> None:
        with self._gap_lock:
            for symbol, missed in gaps:
                self._pending_gaps[symbol] = min(COUNTER_MAX,
                                                 self._pending_gaps[symbol] + missed)
                self.gaps = min(COUNTER_MAX, self.gaps + missed)

    def take_gaps(self) -> Counter[str]:
        """The gaps counted since the last call, per symbol (for HINCRBY)."""
        with self._gap_lock:
            pending, self._pending_gaps = self._pending_gaps, Counter()
        return pending

    def return_gaps(self, gaps: Counter[str]) -> None:
        """Put back deltas that could not be written."""
        with self._gap_lock:
            self._pending_gaps.update(gaps)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.rejected_by[reason] += 1

    def as_hash(self) -> dict[str, Any]:
        return {
            "connected": int(self.connected), "url": self.url, "frames": self.frames,
            "ticks": self.ticks, "trades": self.trades,
            "parse_errors": self.parse_errors, "gaps": self.gaps,
            "reconnects": self.reconnects, "silences": self.silences,
            "pings": self.pings,
            "venue_errors": self.venue_errors, "rejected": self.rejected,
            "backfill_gaps": self.backfill_gaps, "backfilled": self.backfilled,
            "gaps_open": self.gaps_open,
            **{f"rejected_{reason}": count for reason, count in self.rejected_by.items()},
            "consecutive_failures": self.consecutive_failures,
            "feed_down": int(self.feed_down), "last_frame_ms": self.last_frame_ms,
            "connected_since_ms": self.connected_since_ms, "last_error": self.last_error,
            "started_ms": self.started_ms,
        }


class Latency:
    """Histogram of receipt-to-stored latency in 0.1 ms buckets: cheap to feed a whole batch,
    exact enough for p50/p99."""

    BUCKET_NS = 100_000

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()

    def add_batch(self, ticks: Iterable[Tick | Trade], acked_ns: int,
                  also: Latency | None = None) -> None:
        """Record the latency of every tick received (``received_ns`` set) and acknowledged
        at ``acked_ns``; ``also`` records the same (one pass for both)."""
        size = self.BUCKET_NS
        counts = Counter((acked_ns - tick.received_ns) // size for tick in ticks
                         if tick.received_ns)
        self.buckets.update(counts)
        if also is not None:
            also.buckets.update(counts)

    def merge(self, other: Latency) -> None:
        self.buckets.update(other.buckets)

    def percentile(self, pct: float) -> float | None:
        """The latency in ms below which ``pct`` % of the recorded ticks fall."""
        total = sum(self.buckets.values())
        if not total:
            return None
        rank = pct / 100 * total
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return (bucket + 1) * self.BUCKET_NS / 1e6
        return None

    def reset(self) -> None:
        self.buckets.clear()


@dataclass
class _Dropped:
    count: int = 0
    first_ms: int = 0
    last_ms: int = 0


class DropLog:
    """What was dropped from the full buffer, per series: how many ticks and their time
    range, so the log says exactly which history has a hole."""

    def __init__(self) -> None:
        self.series: dict[str, _Dropped] = {}
        self.total = 0

    def add(self, tick: Tick | Trade) -> None:
        key = series_id(tick.exchange, tick.symbol)
        entry = self.series.get(key)
        if entry is None:
            entry = self.series[key] = _Dropped(0, tick.ms, tick.ms)
        entry.count += 1
        entry.first_ms = min(entry.first_ms, tick.ms)
        entry.last_ms = max(entry.last_ms, tick.ms)
        self.total += 1

    def __bool__(self) -> bool:
        return self.total > 0

    def describe(self) -> str:
        return "; ".join(
            f"{name}: {entry.count} ticks from {iso_ms(entry.first_ms)} to {iso_ms(entry.last_ms)}"
            for name, entry in sorted(self.series.items()))
