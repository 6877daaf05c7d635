"""OHLC roll-up buckets: their member encoding and reading them back.

A roll-up of one series field at one interval is a sorted set scored by the bucket's start in
epoch seconds; its member is ``"<start ms>:<open>:<high>:<low>:<close>:<count>"`` with the
values as decimal strings, so ``redis-cli ZRANGE … WITHSCORES`` reads naturally.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bcx.keys import Keys
from bcx.ticks import score


@dataclass(frozen=True)
class Candle:
    start_ms: int
    open: str
    high: str
    low: str
    close: str
    count: int

    def member(self) -> str:
        return (f"{self.start_ms}:{self.open}:{self.high}:{self.low}:{self.close}:"
                f"{self.count}")

    @classmethod
    def from_member(cls, text: str) -> Candle:
        start, open_, high, low, close, count = text.split(":")
        return cls(int(start), open_, high, low, close, int(count))


def read_candles(connection: redis.Redis, keys: Keys, exchange: str, symbol: str, field: str,
                 interval_s: int, start_ms: int | None = None, end_ms: int | None = None,
                 limit: int | None = None) -> list[Candle]:
    """Buckets whose start lies in ``[start_ms, end_ms]``, oldest first."""
    low = "-inf" if start_ms is None else score(start_ms)
    high = "+inf" if end_ms is None else score(end_ms)
    paging = {"start": 0, "num": limit} if limit is not None else {}
    found = connection.zrangebyscore(keys.rollup(exchange, symbol, field, interval_s), low,
                                     high, **paging)
    return [Candle.from_member(item) for item in found]


def watermark_field(field: str, interval_s: int) -> str:
    """The field of the series' watermark hash that records roll-up progress."""
    return f"{field}:{int(interval_s)}"


def read_watermark(connection: redis.Redis, keys: Keys, exchange: str, symbol: str, field: str,
                   interval_s: int) -> int | None:
    """Epoch ms up to which (exclusive) the roll-up is complete, or None if never built."""
    value = connection.hget(keys.watermark(exchange, symbol), watermark_field(field, interval_s))
    return int(value) if value is not None else None
