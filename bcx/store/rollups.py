"""OHLC roll-ups and the watermark hash of each series: candles out, pages of candles in.

A roll-up is a sorted set per (series, field, interval) scored by bucket start in epoch
seconds (member :meth:`bcx.rollups.Candle.member`); the watermark hash of a series holds the
history manager's progress per ``<field>:<interval>`` and the cutoff of each trim
(``trimmed:<field>[:<interval>]``). Every key of a series shares its ``{exchange:symbol}``
hash tag, so a page replace and its watermark move are one transaction in one slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import redis

from bcx.keys import Keys
from bcx.rollups import Candle, watermark_field
from bcx.ticks import before, score


class RollupStore:
    """Reads and writes one Redis database's roll-ups and watermarks. Writes take an
    optional pipeline to join; the instance keeps no state beyond the client."""

    def __init__(self, connection: redis.Redis, keys: Keys | None = None):
        self.connection = connection
        self.keys = keys or Keys()

    def _target(self, pipeline: redis.client.Pipeline | None) -> redis.Redis:
        return pipeline if pipeline is not None else self.connection

    # ------------------------------------------------------------------ reads
    def candles(self, exchange: str, symbol: str, field: str, interval_s: int,
                start_ms: int | None = None, end_ms: int | None = None,
                limit: int | None = None, end_exclusive: bool = False) -> list[Candle]:
        """Buckets whose start lies in ``[start_ms, end_ms]`` (``[start_ms, end_ms)`` with
        ``end_exclusive``), oldest first, at most ``limit`` of them."""
        low = "-inf" if start_ms is None else score(start_ms)
        if end_ms is None:
            high: float | str = "+inf"
        else:
            high = before(end_ms) if end_exclusive else score(end_ms)
        start, num = (0, limit) if limit is not None else (None, None)
        found = self.connection.zrangebyscore(
            self.keys.rollup(exchange, symbol, field, interval_s), low, high, start, num)
        return [Candle.from_member(item) for item in cast("list[str]", found)]

    def oldest_ms(self, exchange: str, symbol: str, field: str, interval_s: int) -> int | None:
        """Start of the oldest bucket kept (from its score), or None for an empty roll-up."""
        first = cast("list[tuple[str, float]]", self.connection.zrange(
            self.keys.rollup(exchange, symbol, field, interval_s), 0, 0, withscores=True))
        return round(first[0][1] * 1000) if first else None

    def watermarks(self, exchange: str, symbol: str) -> dict[str, str]:
        """The series' whole watermark hash (progress and trim cutoffs, as stored)."""
        found = self.connection.hgetall(self.keys.watermark(exchange, symbol))
        return cast("dict[str, str]", found)

    def watermark(self, exchange: str, symbol: str, field: str, interval_s: int) -> int | None:
        """Epoch ms up to which (exclusive) the roll-up is complete, or None if never built."""
        value = self.connection.hget(self.keys.watermark(exchange, symbol),
                                     watermark_field(field, interval_s))
        return int(value) if value is not None else None

    def watermark_fields(self, exchange: str, symbol: str, names: Sequence[str]
                         ) -> list[str | None]:
        """Several fields of the watermark hash in one round trip, in the order asked."""
        found = self.connection.hmget(self.keys.watermark(exchange, symbol), list(names))
        return cast("list[str | None]", found)

    # ------------------------------------------------------------------ writes
    def replace_page(self, exchange: str, symbol: str, field: str, interval_s: int,
                     start_ms: int, end_ms: int | None, candles: Sequence[Candle],
                     watermark_ms: int | None) -> None:
        """Replace every bucket of ``[start_ms, end_ms]`` (``end_ms`` None: to the end) with
        ``candles`` and, when ``watermark_ms`` is given, move the watermark there: one MULTI
        on the series' own hash tag, so readers never see a half-written page."""
        target = self.keys.rollup(exchange, symbol, field, interval_s)
        pipe = self.connection.pipeline(transaction=True)
        # Every bucket of the page is rebuilt whole, so the range is cleared first: a bucket
        # whose members changed must not keep its old member.
        pipe.zremrangebyscore(target, score(start_ms),
                              "+inf" if end_ms is None else score(end_ms))
        if candles:
            pipe.zadd(target, {c.member(): score(c.start_ms) for c in candles})
        if watermark_ms is not None:
            pipe.hset(self.keys.watermark(exchange, symbol),
                      watermark_field(field, interval_s), watermark_ms)
        pipe.execute()

    def import_candles(self, exchange: str, symbol: str, field: str, interval_s: int,
                       candles: Sequence[Candle], marks: Mapping[str, str | int]) -> None:
        """Write imported buckets, each replacing whatever member its start had, and set
        ``marks`` in the watermark hash (import progress, watermarks): one MULTI on the
        series' own hash tag, so an interrupted import never records a page it did not write."""
        target = self.keys.rollup(exchange, symbol, field, interval_s)
        pipe = self.connection.pipeline(transaction=True)
        for candle in candles:
            pipe.zremrangebyscore(target, score(candle.start_ms), score(candle.start_ms))
        if candles:
            pipe.zadd(target, {c.member(): score(c.start_ms) for c in candles})
        if marks:
            # redis-py types hset's mapping invariant in its key: it refuses a dict[str, ...].
            pipe.hset(self.keys.watermark(exchange, symbol),
                      mapping=dict(marks))  # type: ignore[arg-type]
        pipe.execute()

    def trim(self, exchange: str, symbol: str, field: str, interval_s: int, cutoff_ms: int,
             pipeline: redis.client.Pipeline | None = None) -> int:
        """Delete the buckets starting before ``cutoff_ms``; returns how many went."""
        return self._target(pipeline).zremrangebyscore(
            self.keys.rollup(exchange, symbol, field, interval_s), "-inf", before(cutoff_ms))

    def record_cutoffs(self, exchange: str, symbol: str, cutoffs: Mapping[str, int],
                       pipeline: redis.client.Pipeline | None = None) -> None:
        """Store trim cutoffs (``trimmed:…`` field -> epoch ms) in the watermark hash."""
        if cutoffs:
            # redis-py types hset's mapping invariant in its key: it refuses a dict[str, ...].
            self._target(pipeline).hset(self.keys.watermark(exchange, symbol),
                                        mapping=dict(cutoffs))  # type: ignore[arg-type]
