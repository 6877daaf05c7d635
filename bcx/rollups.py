"""Roll-up buckets: their member encoding (``bcx.store.rollups`` reads and writes them) and the
pure folds that build them from raw points, from trades and from finer buckets.

A roll-up of one series field at one interval is a sorted set scored by the bucket's start in
epoch seconds; its member is ``"<start ms>:<open>:<high>:<low>:<close>:<count>"`` with the
values as decimal strings, so ``redis-cli ZRANGE … WITHSCORES`` reads naturally. The roll-up
of the ``trades`` field is OHLCV: the open/high/low/close of trade prices and ``count`` trades,
followed by ``":<volume>:<quote volume>:<taker-buy volume>"`` (base, quote = sum of price x
size, and the base volume of trades whose taker bought), all exact decimal text; the VWAP is
derived (quote / base), never stored.

Every sum is taken in :data:`EXACT` (a decimal context wide enough that adding exchange
quantities never rounds), so a bucket's volume is the exact sum of its trades' sizes and an
hour merged from minutes equals the hour rolled up straight from trades.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

from bcx.ticks import BUY, Point, TradeFields

# 100 significant digits: sums and products of exchange decimals (a few dozen digits at most)
# stay exact; only the derived VWAP divides, and it is rounded to 28 digits when shown.
EXACT = Context(prec=100)
TRADES = "trades"
# The last member part of an imported bucket.
IMPORTED = "i"


def dec_text(value: Decimal) -> str:
    """A decimal as plain text without an exponent (``1E-8`` reads ``0.00000001``)."""
    return format(value, "f")


@dataclass(frozen=True)
class Candle:
    start_ms: int
    open: str
    high: str
    low: str
    close: str
    count: int
    # OHLCV buckets of the trades roll-up only (None for price, bid and ask).
    volume: str | None = None
    quote: str | None = None
    buy: str | None = None
    # Imported from a venue's candles (``bcx backfill``), not built here from ticks: the
    # member ends in ``:i``. ``count`` is then the venue's trade count, 0 where it has none.
    imported: bool = False

    def member(self) -> str:
        text = (f"{self.start_ms}:{self.open}:{self.high}:{self.low}:{self.close}:"
                f"{self.count}")
        if self.volume is not None:
            text = f"{text}:{self.volume}:{self.quote}:{self.buy}"
        return f"{text}:{IMPORTED}" if self.imported else text

    @classmethod
    def from_member(cls, text: str) -> Candle:
        parts = text.split(":")
        imported = parts[-1] == IMPORTED
        if imported:
            parts.pop()
        if len(parts) == 9:
            start, open_, high, low, close, count, volume, quote, buy = parts
            return cls(int(start), open_, high, low, close, int(count), volume, quote, buy,
                       imported)
        start, open_, high, low, close, count = parts
        return cls(int(start), open_, high, low, close, int(count), imported=imported)

    def outweighs(self, imported: Candle) -> bool:
        """Whether this live bucket was built from at least as much data as the ``imported``
        one of the same start (trade count, and base volume where both carry it), so it may
        replace it."""
        if self.count < imported.count:
            return False
        if self.volume is not None and imported.volume is not None:
            return Decimal(self.volume) >= Decimal(imported.volume)
        return True

    @property
    def vwap(self) -> Decimal | None:
        """Quote volume / base volume (None without volume)."""
        return vwap(Decimal(self.quote or 0), Decimal(self.volume or 0))


def keep_imported(live: Sequence[Candle], existing: Iterable[Candle]) -> list[Candle]:
    """The buckets to write over a page whose ``existing`` buckets are being rebuilt as
    ``live``: each live bucket, except where an imported bucket holds more data (then the
    imported one stays), plus imported buckets no live one covers."""
    kept = {candle.start_ms: candle for candle in existing if candle.imported}
    if not kept:
        return list(live)
    out = []
    for candle in live:
        old = kept.get(candle.start_ms)
        if old is None or candle.outweighs(old):
            kept.pop(candle.start_ms, None)
            out.append(candle)
    out.extend(kept.values())
    out.sort(key=_start)
    return out


def vwap(quote: Decimal, volume: Decimal) -> Decimal | None:
    return quote / volume if volume else None


def watermark_field(field: str, interval_s: int) -> str:
    """The field of the series' watermark hash that records roll-up progress."""
    return f"{field}:{int(interval_s)}"


def imported_field(field: str, interval_s: int) -> str:
    """The watermark-hash field that lists the ranges imported into a roll-up
    (``bcx backfill``): ``"<start ms>-<end ms>,..."``, end exclusive. Its presence tells the
    history manager to keep imported buckets it would otherwise rebuild."""
    return f"imported:{field}:{int(interval_s)}"


def floor_to(ms: int, interval_ms: int) -> int:
    return ms - ms % interval_ms


# --------------------------------------------------------------------------- folds
# One grouping loop over time-ordered items; what a bucket becomes is the fold's business.
Fold = Callable[[int, Sequence[Any]], Candle]


def fold_buckets(items: Iterable[Any], interval_s: int, start_of: Callable[[Any], int],
                 fold: Fold) -> list[Candle]:
    """One candle per non-empty bucket of ``interval_s`` of time-ordered ``items``."""
    step = interval_s * 1000
    out: list[Candle] = []
    group: list[Any] = []
    bucket = -1
    for item in items:
        start = floor_to(start_of(item), step)
        if group and start != bucket:
            out.append(fold(bucket, group))
            group = []
        bucket = start
        group.append(item)
    if group:
        out.append(fold(bucket, group))
    return out


def fold_points(start: int, points: Sequence[Point]) -> Candle:
    """OHLC of raw points (values compared as decimals, kept as the exchange's text)."""
    values = [value for _, value in points]
    return Candle(start, values[0], max(values, key=Decimal), min(values, key=Decimal),
                  values[-1], len(values))


def fold_trades(start: int, trades: Sequence[TradeFields]) -> Candle:
    """OHLCV of trades: prices as OHLC, exact base, quote and taker-buy volumes."""
    prices = [trade.price for trade in trades]
    volume = quote = buy = Decimal(0)
    for trade in trades:
        size = Decimal(trade.size)
        volume = EXACT.add(volume, size)
        quote = EXACT.add(quote, EXACT.multiply(Decimal(trade.price), size))
        if trade.side == BUY:
            buy = EXACT.add(buy, size)
    return Candle(start, prices[0], max(prices, key=Decimal), min(prices, key=Decimal),
                  prices[-1], len(trades), dec_text(volume), dec_text(quote), dec_text(buy))


def fold_candles(start: int, group: Sequence[Candle]) -> Candle:
    """Finer candles merged exactly into one (their volumes summed when they carry them)."""
    merged = Candle(start, group[0].open, max((c.high for c in group), key=Decimal),
                    min((c.low for c in group), key=Decimal), group[-1].close,
                    sum(c.count for c in group))
    if group[0].volume is None:
        return merged
    volume, quote, buy = (dec_text(_sum(getattr(c, name) for c in group))
                          for name in ("volume", "quote", "buy"))
    return Candle(merged.start_ms, merged.open, merged.high, merged.low, merged.close,
                  merged.count, volume, quote, buy)


def _sum(texts: Iterable[str | None]) -> Decimal:
    total = Decimal(0)
    for text in texts:
        total = EXACT.add(total, Decimal(text or 0))
    return total


def candles_from_points(points: Iterable[Point], interval_s: int) -> list[Candle]:
    return fold_buckets(points, interval_s, _first, fold_points)


def candles_from_trades(trades: Iterable[TradeFields], interval_s: int) -> list[Candle]:
    return fold_buckets(trades, interval_s, _first, fold_trades)


def candles_from_candles(candles: Iterable[Candle], interval_s: int) -> list[Candle]:
    return fold_buckets(candles, interval_s, _start, fold_candles)


def _first(item: Point | TradeFields) -> int:
    return item[0]


def _start(candle: Candle) -> int:
    return candle.start_ms


@dataclass
class Volume:
    """Exact running totals of trades (or OHLCV buckets) over a range."""

    volume: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    buy: Decimal = Decimal(0)
    trades: int = 0

    def add_trade(self, trade: TradeFields) -> None:
        size = Decimal(trade.size)
        self.volume = EXACT.add(self.volume, size)
        self.quote = EXACT.add(self.quote, EXACT.multiply(Decimal(trade.price), size))
        if trade.side == BUY:
            self.buy = EXACT.add(self.buy, size)
        self.trades += 1

    def add_candle(self, candle: Candle) -> None:
        self.volume = EXACT.add(self.volume, Decimal(candle.volume or 0))
        self.quote = EXACT.add(self.quote, Decimal(candle.quote or 0))
        self.buy = EXACT.add(self.buy, Decimal(candle.buy or 0))
        self.trades += candle.count

    @property
    def vwap(self) -> Decimal | None:
        return vwap(self.quote, self.volume)
