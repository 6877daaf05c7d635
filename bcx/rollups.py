"""OHLC roll-up buckets: their member encoding (``bcx.store.rollups`` reads and writes them).

A roll-up of one series field at one interval is a sorted set scored by the bucket's start in
epoch seconds; its member is ``"<start ms>:<open>:<high>:<low>:<close>:<count>"`` with the
values as decimal strings, so ``redis-cli ZRANGE … WITHSCORES`` reads naturally.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def watermark_field(field: str, interval_s: int) -> str:
    """The field of the series' watermark hash that records roll-up progress."""
    return f"{field}:{int(interval_s)}"

