"""The one reader of raw history: points of (series, field) in ``[start, end]`` from the
archive's dataset for the cold range and Redis (through the store classes) for the hot range,
merged into one answer. A value in both (archived, not yet trimmed: a pass stopped between the
two) counts once: the two are deduplicated by member ``(ms, value)``.

:class:`TieredTicks` and :class:`TieredTrades` stand in for :class:`bcx.store.TickStore` and
:class:`bcx.store.TradeStore` in every reader (``/history``, ``/trades``, raw-built ``/ohlc``,
``/stats``, ``bcx export``), so none of them knows where a point came from; each records which
tiers answered in ``tiers`` (:func:`source` names them: ``redis``, ``archive`` or
``archive+redis``). Build one per request: ``tiers`` is that request's.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bcx.coldtier.dataset import DAY_MS, Dataset, day_start_ms
from bcx.store import Store, TradeStore
from bcx.ticks import Point, TradeFields, parse_trade_member

REDIS, ARCHIVE = "redis", "archive"
TRADES = "trades"


def source(*readers: Any) -> str:
    """``redis``, ``archive`` or ``archive+redis``: the tiers that answered ``readers``'
    reads (a plain store is Redis alone)."""
    found: set[str] = set()
    for reader in readers:
        found |= getattr(reader, "tiers", set())
    return "+".join(sorted(found)) or REDIS


class ColdTier:
    """Points of one (series, field) from the dataset under ``root`` and from Redis."""

    def __init__(self, root: str | Path | None):
        self.dataset = Dataset(root) if root is not None and Path(root).is_dir() else None
        self.tiers: set[str] = set()

    def points(self, redis_read: Callable[[int | None, int | None, int | None, bool],
                                          list[Point]],
               exchange: str, symbol: str, field: str, start_ms: int | None,
               end_ms: int | None, limit: int | None = None, newest_first: bool = False
               ) -> list[Point]:
        """At most ``limit`` points of ``[start_ms, end_ms]``, oldest first unless
        ``newest_first``: the union of the dataset's and ``redis_read(start, end, limit,
        newest_first)``'s."""
        hot = redis_read(start_ms, end_ms, limit, newest_first)
        cold = self._cold(exchange, symbol, field, start_ms, end_ms, limit, newest_first)
        if not cold or not hot:
            if cold or hot:
                self.tiers.add(ARCHIVE if cold else REDIS)
            return cold or hot
        if (hot[0] < cold[-1]) if newest_first else (cold[-1] < hot[0]):
            # The usual case: the archive ends before Redis begins, nothing in both.
            self.tiers.add(ARCHIVE)
            if limit is None or len(cold) < limit:
                self.tiers.add(REDIS)
            return (cold + hot)[:limit]
        merged: list[Point] = []
        seen: set[Point] = set()
        hot_set = set(hot)
        for point in heapq.merge(cold, hot, reverse=newest_first):
            if point in seen:
                continue
            seen.add(point)
            merged.append(point)
            self.tiers.add(REDIS if point in hot_set else ARCHIVE)
            if limit is not None and len(merged) == limit:
                break
        return merged

    def _cold(self, exchange: str, symbol: str, field: str, start_ms: int | None,
              end_ms: int | None, limit: int | None, newest_first: bool) -> list[Point]:
        """The dataset's first ``limit`` points in the order asked, read a day at a time."""
        if not self.covers(exchange, symbol, start_ms, end_ms):
            return []
        assert self.dataset is not None
        days = self.dataset.days(exchange, symbol)
        out: list[Point] = []
        for day in reversed(days) if newest_first else days:
            first = day_start_ms(day)
            low = first if start_ms is None else max(first, start_ms)
            high = first + DAY_MS - 1 if end_ms is None else min(first + DAY_MS - 1, end_ms)
            if low > high:
                continue
            found = self.dataset.read(exchange, symbol, field, low, high)
            out.extend(reversed(found) if newest_first else found)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def count(self, redis_count: Callable[[int | None, int | None], int], exchange: str,
              symbol: str, field: str, start_ms: int | None, end_ms: int | None,
              points: Callable[[], list[Any]]) -> int:
        """Points of ``[start_ms, end_ms]`` in either tier, each once, without reading them
        where the archive ends before Redis begins (``points()`` reads them otherwise)."""
        if not self.covers(exchange, symbol, start_ms, end_ms):
            return redis_count(start_ms, end_ms)
        assert self.dataset is not None
        cold, newest = self.dataset.count(exchange, symbol, field, start_ms, end_ms)
        if newest is None:
            return redis_count(start_ms, end_ms)
        if redis_count(start_ms, newest):  # some points in both: count them once
            return len(points())
        return cold + (redis_count(newest + 1, end_ms)
                       if end_ms is None or newest < end_ms else 0)

    def covers(self, exchange: str, symbol: str, start_ms: int | None, end_ms: int | None
               ) -> bool:
        """Whether the dataset has a day of the series within ``[start_ms, end_ms]``."""
        if self.dataset is None:
            return False
        return any((end_ms is None or first <= end_ms)
                   and (start_ms is None or first + DAY_MS > start_ms)
                   for first in map(day_start_ms, self.dataset.days(exchange, symbol)))

    def oldest_ms(self, exchange: str, symbol: str, field: str, hot: int | None) -> int | None:
        """The oldest point of the field in either tier (``hot``: Redis's)."""
        if self.dataset is None:
            return hot
        for day in self.dataset.days(exchange, symbol):
            first = day_start_ms(day)
            found = self.dataset.read(exchange, symbol, field, first, first + DAY_MS - 1)
            if found:
                return found[0][0] if hot is None else min(found[0][0], hot)
        return hot


class TieredTicks:
    """A :class:`bcx.store.TickStore` whose range reads reach into the archive."""

    def __init__(self, store: Store, archive_dir: str | Path | None):
        self.store = store
        self.cold = ColdTier(archive_dir)
        self.connection, self.keys = store.connection, store.keys

    @property
    def tiers(self) -> set[str]:
        return self.cold.tiers

    def range(self, exchange: str, symbol: str, field: str, start_ms: int | None = None,
              end_ms: int | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[Point]:
        return self.cold.points(
            lambda low, high, count, desc: self.store.range(exchange, symbol, field, low, high,
                                                            limit=count, newest_first=desc),
            exchange, symbol, field, start_ms, end_ms, limit, newest_first)

    def count(self, exchange: str, symbol: str, field: str, start_ms: int | None = None,
              end_ms: int | None = None) -> int:
        return self.cold.count(
            lambda low, high: self.store.count(exchange, symbol, field, low, high),
            exchange, symbol, field, start_ms, end_ms,
            lambda: self.range(exchange, symbol, field, start_ms, end_ms))

    def oldest_ms(self, exchange: str, symbol: str, field: str) -> int | None:
        return self.cold.oldest_ms(exchange, symbol, field,
                                   self.store.oldest_ms(exchange, symbol, field))

    def count_and_oldest(self, exchange: str, symbol: str, field: str, start_ms: int,
                         end_ms: int) -> tuple[int, int | None]:
        return (self.count(exchange, symbol, field, start_ms, end_ms),
                self.oldest_ms(exchange, symbol, field))

    def __getattr__(self, name: str) -> Any:  # latest, series, has_series, …: Redis alone
        return getattr(self.store, name)


class TieredTrades:
    """A :class:`bcx.store.TradeStore` whose range reads reach into the archive (field
    ``trades``, value = the member after ``"<ms>:"``)."""

    def __init__(self, trades: TradeStore, archive_dir: str | Path | None,
                 cold: ColdTier | None = None):
        self.trades = trades
        self.cold = cold or ColdTier(archive_dir)
        self.connection, self.keys = trades.connection, trades.keys

    @property
    def tiers(self) -> set[str]:
        return self.cold.tiers

    def range(self, exchange: str, symbol: str, start_ms: int | None = None,
              end_ms: int | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[TradeFields]:
        def hot(low: int | None, high: int | None, count: int | None, desc: bool
                ) -> list[Point]:
            return [(t.ms, f"{t.price}:{t.size}:{t.side[0]}:{t.id}")
                    for t in self.trades.range(exchange, symbol, low, high, limit=count,
                                               newest_first=desc)]

        out = []
        for ms, rest in self.cold.points(hot, exchange, symbol, TRADES, start_ms, end_ms,
                                         limit, newest_first):
            try:
                out.append(parse_trade_member(f"{ms}:{rest}"))
            except ValueError:
                continue
        return out

    def count(self, exchange: str, symbol: str, start_ms: int | None = None,
              end_ms: int | None = None) -> int:
        return self.cold.count(
            lambda low, high: self.trades.count(exchange, symbol, low, high),
            exchange, symbol, TRADES, start_ms, end_ms,
            lambda: self.range(exchange, symbol, start_ms, end_ms))

    def oldest_ms(self, exchange: str, symbol: str) -> int | None:
        return self.cold.oldest_ms(exchange, symbol, TRADES,
                                   self.trades.oldest_ms(exchange, symbol))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.trades, name)
