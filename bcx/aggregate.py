"""Candles and range statistics: served from the OHLC roll-ups where their watermark says they
are complete, with the raw ticks after the watermark folded in, so long ranges never read raw
history and recent data is never missing.

Price candles carry the traded volume of their bucket (``[ms, open, high, low, close,
volume]``): the OHLC stays the price series' (the venue's last-trade price, as before), the
volume is the exact base volume of the trades roll-up where it is built and of the raw trades
after its watermark (0 where no trade). Volume figures are summed in decimal
(``bcx.rollups.Volume``) and become JSON numbers only at the end.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bcx.coldtier import tiered
from bcx.keys import series_id
from bcx.query import QueryError, num
from bcx.rollups import TRADES, Candle, Volume, floor_to, watermark_field
from bcx.store import RollupStore, TradeStore
from bcx.store.readers import TickReader, TradeReader

MAX_CANDLES = 10_000
# Raw points one candle request may fold in; past this the interval must match a roll-up.
RAW_CANDLE_MAX = 500_000
# Ranges holding more raw points than this are summarised from roll-ups.
STATS_RAW_MAX = 20_000
# Roll-up buckets one stats request reads at most (the finest roll-up within it is used).
STATS_BUCKETS_MAX = 20_000
# Intervals offered when the client names none: the smallest giving at most AUTO_CANDLES.
AUTO_INTERVALS = (60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
AUTO_CANDLES = 1000


@dataclass(frozen=True)
class Source:
    """Where a range is read from: roll-up ``interval_s`` up to ``cut_ms`` (exclusive), raw
    ticks from ``cut_ms`` on. ``interval_s`` None means raw only."""

    interval_s: int | None
    cut_ms: int


def auto_interval(start_ms: int, end_ms: int) -> int:
    span_s = max(1, (end_ms - start_ms) // 1000)
    for interval in AUTO_INTERVALS:
        if span_s / interval <= AUTO_CANDLES:
            return interval
    return AUTO_INTERVALS[-1]


def _cut(marks: dict[str, str], field: str, interval: int) -> int | None:
    """Where the roll-up stops being complete. A watermark inside a bucket leaves that bucket
    partial, so the cut is the bucket boundary at or before it."""
    mark = marks.get(watermark_field(field, interval))
    if mark is None or not mark.lstrip("-").isdigit():
        return None
    return int(mark) // (interval * 1000) * interval * 1000


def choose_source(store: RollupStore, exchange: str, symbol: str, field: str,
                  rollups: Iterable[int], start_ms: int, finest: bool = False) -> Source:
    """The coarsest (or ``finest``) built roll-up and the point up to which it is complete.
    Roll-ups whose watermark lies before ``start_ms`` add nothing and are skipped."""
    marks = store.watermarks(exchange, symbol)
    for interval in sorted(rollups, reverse=not finest):
        cut = _cut(marks, field, interval)
        if cut is not None and cut > start_ms:
            return Source(interval, cut)
    return Source(None, start_ms)


def rollup_chain(store: RollupStore, exchange: str, symbol: str, field: str,
                 rollups: Iterable[int], start_ms: int, fits: int) -> list[Source]:
    """Built roll-ups dividing ``fits``, coarsest first, each read from the previous one's cut
    to its own: the coarse one serves the bulk of the range, finer ones the recent part, and
    raw ticks only the minutes after the finest watermark. Each divides the one before, so
    every level starts on one of its own bucket boundaries."""
    marks = store.watermarks(exchange, symbol)
    chain: list[Source] = []
    position = start_ms
    for interval in sorted((r for r in rollups if fits % r == 0), reverse=True):
        if chain and chain[-1].interval_s % interval:  # type: ignore[operator]
            continue
        cut = _cut(marks, field, interval)
        if cut is not None and cut > position:
            chain.append(Source(interval, cut))
            position = cut
    return chain


class Buckets:
    """OHLC buckets of one width, fed in time order from candles and raw points."""

    def __init__(self, width_ms: int):
        self.width_ms = width_ms
        self.rows: dict[int, list[float]] = {}

    def add(self, ms: int, o: float, h: float, low: float, c: float, n: int) -> None:
        start = ms // self.width_ms * self.width_ms
        row = self.rows.get(start)
        if row is None:
            self.rows[start] = [o, h, low, c, n]
        else:
            row[1] = max(row[1], h)
            row[2] = min(row[2], low)
            row[3] = c
            row[4] += n

    def add_candles(self, candles: Iterable[Candle]) -> None:
        for candle in candles:
            o, h, low, c = num(candle.open), num(candle.high), num(candle.low), num(candle.close)
            if o is not None and h is not None and low is not None and c is not None:
                self.add(candle.start_ms, o, h, low, c, candle.count)

    def add_points(self, points: Iterable[tuple[int, str]]) -> None:
        for ms, text in points:
            value = num(text)
            if value is not None:
                self.add(ms, value, value, value, value, 1)


def candles(rollup_store: RollupStore, store: TickReader, exchange: str, symbol: str,
            field: str, interval_s: int | None, start_ms: int, end_ms: int,
            rollups: Sequence[int], trades: TradeReader | None = None) -> dict[str, Any]:
    """Candles ``[ms, open, high, low, close]`` of ``interval_s`` whose bucket start lies in
    the range (the first bucket is aligned down, so it holds its whole interval); price
    candles add the bucket's traded base ``volume``. ``ticks`` lists each candle's tick
    count."""
    if interval_s is None:
        interval_s = auto_interval(start_ms, end_ms)
    width = interval_s * 1000
    first = start_ms // width * width
    if (end_ms - first) // width + 1 > MAX_CANDLES:
        raise QueryError("interval", f"{interval_s}s over this range gives more than "
                         f"{MAX_CANDLES} candles: choose a longer interval or a shorter range")
    chain = rollup_chain(rollup_store, exchange, symbol, field, rollups, first,
                         fits=interval_s)
    buckets = Buckets(width)
    raw_from = first
    for level in chain:
        if raw_from <= end_ms:
            buckets.add_candles(rollup_store.candles(exchange, symbol, field,
                                                     level.interval_s,  # type: ignore[arg-type]
                                                     raw_from, min(end_ms, level.cut_ms - 1)))
        raw_from = level.cut_ms
    if raw_from <= end_ms:
        if store.count(exchange, symbol, field, raw_from, end_ms) > RAW_CANDLE_MAX:
            raise QueryError("interval", "this range would be built from too many raw ticks: "
                             "use a multiple of a roll-up interval (" +
                             ", ".join(f"{r}s" for r in rollups) + ")")
        buckets.add_points(store.range(exchange, symbol, field, raw_from, end_ms))
    kept = [(start, row) for start, row in sorted(buckets.rows.items()) if start <= end_ms]
    rows: list[list[Any]] = [[start, *row[:4]] for start, row in kept]
    if field == "price":
        volumes = bucket_volumes(rollup_store, trades or TradeStore(store.connection, store.keys),
                                 exchange, symbol, interval_s, first, end_ms, rollups)
        for row in rows:
            found = volumes.get(row[0])
            row.append(float(found.volume) if found is not None else 0)
    return {"series": series_id(exchange, symbol), "field": field, "interval": interval_s,
            "start": first, "end": end_ms, "source": _chain_name(chain),
            "raw_source": tiered.source(store, trades),
            "count": len(rows), "candles": rows, "ticks": [int(row[4]) for _, row in kept]}


def bucket_volumes(rollup_store: RollupStore, trades: TradeReader, exchange: str, symbol: str,
                   interval_s: int, first: int, end_ms: int, rollups: Sequence[int]
                   ) -> dict[int, Volume]:
    """Exact traded volume per bucket of ``interval_s`` starting in ``[first, end_ms]``: from
    the trades roll-ups up to their watermarks (coarsest first), from raw trades after."""
    width = interval_s * 1000
    out: dict[int, Volume] = defaultdict(Volume)
    raw_from = first
    for level in rollup_chain(rollup_store, exchange, symbol, TRADES, rollups, first,
                              fits=interval_s):
        if raw_from <= end_ms:
            for candle in rollup_store.candles(exchange, symbol, TRADES,
                                               level.interval_s,  # type: ignore[arg-type]
                                               raw_from, min(end_ms, level.cut_ms - 1)):
                out[floor_to(candle.start_ms, width)].add_candle(candle)
        raw_from = level.cut_ms
    if raw_from <= end_ms:
        if trades.count(exchange, symbol, raw_from, end_ms) > RAW_CANDLE_MAX:
            raise QueryError("interval", "this range would be built from too many raw trades: "
                             "use a multiple of a roll-up interval (" +
                             ", ".join(f"{r}s" for r in rollups) + ")")
        for trade in trades.range(exchange, symbol, raw_from, end_ms):
            out[floor_to(trade.ms, width)].add_trade(trade)
    return out


def stats(rollup_store: RollupStore, store: TickReader, exchange: str, symbol: str, field: str,
          start_ms: int, end_ms: int, rollups: Sequence[int],
          trades: TradeReader | None = None) -> dict[str, Any]:
    """Count, min, max, mean, median, std, first, last, change % of one field, the ask - bid
    spread's statistics (in decimal) and the traded volume of the range.

    Exact from raw ticks whenever they hold every tick of the range that was ever stored (a
    range reaching before the first tick of a young install included); from roll-ups only
    for ranges holding more than STATS_RAW_MAX ticks or reaching into trimmed history, where
    mean, median and std are taken over bucket closes weighted by tick count
    (``approximate`` says so). ``first_time``/``last_time`` are tick times: from the raw ticks
    of the first and last bucket when a roll-up served them (a bucket start only when its raw
    ticks are gone). The volume figures are exact sums of the trades held (``range_volume``).
    """
    trades = trades or TradeStore(store.connection, store.keys)
    source = Source(None, start_ms)
    if _needs_rollups(rollup_store, store, exchange, symbol, field, start_ms, end_ms, rollups):
        # The finest roll-up keeps the approximation closest while bounding the read.
        usable = [r for r in rollups if (end_ms - start_ms) / (r * 1000) <= STATS_BUCKETS_MAX]
        source = choose_source(rollup_store, exchange, symbol, field, usable, start_ms,
                               finest=True)
        if source.interval_s is None:
            # No roll-up is coarse enough for the bucket budget (start=0 spans decades): the
            # coarsest built one still reads far fewer rows than the raw ticks it replaces,
            # and its retention bounds the read.
            source = choose_source(rollup_store, exchange, symbol, field, rollups, start_ms)
    series = {name: _samples(rollup_store, store, exchange, symbol, name, source, start_ms,
                             end_ms) for name in dict.fromkeys((field, "bid", "ask"))}
    out: dict[str, Any] = {"series": series_id(exchange, symbol), "field": field,
                           "start": start_ms, "end": end_ms, "source": _source_name(source),
                           "interval": source.interval_s,
                           "approximate": source.interval_s is not None}
    out.update(summarise(series[field]))
    if source.interval_s is not None and series[field]:
        out["first_time"], out["last_time"] = _tick_times(
            store, exchange, symbol, field, series[field], source.interval_s, start_ms, end_ms)
    spreads = spread_series(series["bid"], series["ask"])
    values = [value for _, value, _ in spreads]
    out["spread"] = {"count": len(values),
                     "min": _number(min(values)) if values else None,
                     "max": _number(max(values)) if values else None,
                     "mean": _number(_mean(values)) if values else None,
                     "last": _number(values[-1]) if values else None}
    traded = range_volume(rollup_store, trades, exchange, symbol, start_ms, end_ms, rollups)
    average = traded.vwap
    out.update({"volume": _number(traded.volume), "quote_volume": _number(traded.quote),
                "vwap": None if average is None else _number(average),
                "trades": traded.trades, "buy_volume": _number(traded.buy),
                "raw_source": tiered.source(store, trades)})
    return out


def range_volume(rollup_store: RollupStore, trades: TradeReader, exchange: str, symbol: str,
                 start_ms: int, end_ms: int, rollups: Sequence[int]) -> Volume:
    """Base, quote and taker-buy volume and trade count of ``[start_ms, end_ms]``, exact: the
    raw trades when they are few and cover the range; otherwise the complete buckets of the
    finest built trades roll-up that lie wholly inside the range, with the raw trades of the
    partial buckets at either end (and after the roll-up's watermark)."""
    total = Volume()
    count = trades.count(exchange, symbol, start_ms, end_ms)
    raw_whole = count <= STATS_RAW_MAX and _raw_covers(
        rollup_store, trades.oldest_ms(exchange, symbol), exchange, symbol, TRADES, rollups,
        start_ms, lambda low, high: trades.count(exchange, symbol, low, high - 1))
    inner = (start_ms, start_ms)
    if not raw_whole:
        source = choose_source(rollup_store, exchange, symbol, TRADES, rollups, start_ms,
                               finest=True)
        if source.interval_s is not None:
            width = source.interval_s * 1000
            low = -floor_to(-start_ms, width)
            high = min(floor_to(end_ms + 1, width), source.cut_ms)
            if low < high:
                inner = (low, high)
                for candle in rollup_store.candles(exchange, symbol, TRADES, source.interval_s,
                                                   low, high, end_exclusive=True):
                    total.add_candle(candle)
    for low, high in ((start_ms, inner[0] - 1), (inner[1], end_ms)):
        if low <= high:
            for trade in trades.range(exchange, symbol, low, high):
                total.add_trade(trade)
    return total


# A sample is (ms, representative value, weight) plus its low, high and open, and the
# representative value's decimal text: a raw tick is one sample of weight 1; a roll-up bucket
# is its close weighted by its tick count.
Sample = tuple[int, float, int, float, float, float, str]


def _samples(rollup_store: RollupStore, store: TickReader, exchange: str, symbol: str,
             field: str, source: Source, start_ms: int, end_ms: int) -> list[Sample]:
    out: list[Sample] = []
    raw_from = start_ms
    if source.interval_s is not None:
        for candle in rollup_store.candles(exchange, symbol, field, source.interval_s,
                                           start_ms, min(end_ms, source.cut_ms - 1)):
            o, h, low, c = (num(candle.open), num(candle.high), num(candle.low),
                            num(candle.close))
            if o is not None and h is not None and low is not None and c is not None:
                out.append((candle.start_ms, c, candle.count, low, h, o, candle.close))
        raw_from = max(start_ms, source.cut_ms)
    for ms, text in store.range(exchange, symbol, field, raw_from, end_ms):
        value = num(text)
        if value is not None:
            out.append((ms, value, 1, value, value, value, text))
    return out


def _tick_times(store: TickReader, exchange: str, symbol: str, field: str, samples: list[Sample],
                interval_s: int, start_ms: int, end_ms: int) -> tuple[int, int]:
    """The times of the range's first and last ticks where a roll-up bucket stands for them:
    the first (last) raw tick of that bucket when the raw history still holds all its ticks,
    else the bucket's start."""
    width = interval_s * 1000

    def kept(sample: Sample) -> bool:
        bucket = floor_to(sample[0], width)
        return store.count(exchange, symbol, field, bucket, bucket + width - 1) >= sample[2]

    first, last = samples[0], samples[-1]
    first_ms, last_ms = first[0], last[0]
    if first[2] > 1 or first[0] % width == 0:  # a bucket (a raw sample is its own time)
        found = store.range(exchange, symbol, field, start_ms, end_ms, limit=1)
        if found and found[0][0] < floor_to(first_ms, width) + width and kept(first):
            first_ms = found[0][0]
    if last[2] > 1 or last[0] % width == 0:
        found = store.range(exchange, symbol, field, start_ms, end_ms, limit=1,
                            newest_first=True)
        if found and found[0][0] >= floor_to(last_ms, width) and kept(last):
            last_ms = found[0][0]
    return first_ms, last_ms


def summarise(samples: list[Sample]) -> dict[str, Any]:
    if not samples:
        return {"count": 0, "min": None, "max": None, "mean": None, "median": None,
                "std": None, "first": None, "last": None, "first_time": None,
                "last_time": None, "change_pct": None}
    weights = [sample[2] for sample in samples]
    values = [sample[1] for sample in samples]
    total = sum(weights)
    mean = sum(v * w for v, w in zip(values, weights, strict=True)) / total
    variance = sum(w * (v - mean) ** 2 for v, w in zip(values, weights, strict=True)) / total
    first, last = samples[0][5], samples[-1][1]
    return {"count": total, "min": min(sample[3] for sample in samples),
            "max": max(sample[4] for sample in samples), "mean": _clean(mean),
            "median": _weighted_median(values, weights), "std": _clean(math.sqrt(variance)),
            "first": first, "last": last, "first_time": samples[0][0],
            "last_time": samples[-1][0],
            "change_pct": _clean((last - first) / first * 100) if first else None}


def spread_series(bids: list[Sample], asks: list[Sample]) -> list[tuple[int, Decimal, int]]:
    """``ask - bid`` in decimal at each time either side changed, once both are known (a bid
    and an ask of the same millisecond are one update, not two)."""
    merged = sorted([(s[0], 0, s[6]) for s in bids] + [(s[0], 1, s[6]) for s in asks])
    sides: list[Decimal | None] = [None, None]
    out = []
    for index, (ms, side, text) in enumerate(merged):
        try:
            sides[side] = Decimal(text)
        except InvalidOperation:
            continue
        later_same_ms = index + 1 < len(merged) and merged[index + 1][0] == ms
        bid, ask = sides
        if bid is not None and ask is not None and not later_same_ms:
            out.append((ms, ask - bid, 1))
    return out


def _needs_rollups(rollup_store: RollupStore, store: TickReader, exchange: str, symbol: str,
                   field: str, start_ms: int, end_ms: int, rollups: Sequence[int]) -> bool:
    """Long ranges, and ranges whose raw ticks were (partly) trimmed away."""
    count, oldest = store.count_and_oldest(exchange, symbol, field, start_ms, end_ms)
    if count > STATS_RAW_MAX:
        return True
    return not _raw_covers(rollup_store, oldest, exchange, symbol, field, rollups, start_ms,
                           lambda low, high: store.count(exchange, symbol, field, low,
                                                         high - 1))


def _raw_covers(rollup_store: RollupStore, oldest_raw: int | None, exchange: str,
                symbol: str, field: str, rollups: Sequence[int], start_ms: int,
                raw_count: Callable[[int, int], int]) -> bool:
    """Whether the raw history holds every point from ``start_ms`` on that was ever stored:
    its oldest point is at or before ``start_ms``, or no roll-up knows of a point between
    ``start_ms`` and it (a young install: the range reaches before the first tick, nothing
    was trimmed). ``raw_count(low, high)`` counts raw points in ``[low, high)``."""
    if oldest_raw is not None and oldest_raw <= start_ms:
        return True
    for interval in sorted(rollups):
        width = interval * 1000
        low = floor_to(start_ms, width)
        high = None if oldest_raw is None else floor_to(oldest_raw, width)
        if rollup_store.candles(exchange, symbol, field, interval, low, high, limit=1,
                                end_exclusive=True):
            return False  # a bucket before the oldest raw point: its points were trimmed
        if high is None:
            continue
        holding = rollup_store.candles(exchange, symbol, field, interval, high, high, limit=1)
        if holding and holding[0].count > raw_count(high, high + width):
            return False  # the oldest raw point's bucket lost points to a trim
    return True


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def _number(value: Decimal) -> float:
    """A decimal as a JSON number: the nearest float to the exact value, so 0.01 stays 0.01
    (never float noise from subtracting two floats)."""
    return float(value)


def _weighted_median(values: list[float], weights: list[int]) -> float:
    pairs = sorted(zip(values, weights, strict=True))
    half = sum(weights) / 2
    running = 0
    for index, (value, weight) in enumerate(pairs):
        running += weight
        if running > half:
            return value
        if running == half:
            return _clean((value + pairs[index + 1][0]) / 2)
    return pairs[-1][0]


def _clean(value: float) -> float:
    """Round away float noise (``0.30000000000000004``) that no exchange price carries."""
    return float(f"{value:.12g}")


def _chain_name(chain: list[Source]) -> str:
    """``raw`` or ``rollup:3600,60``: the roll-ups read, coarsest first (raw ticks after)."""
    return "rollup:" + ",".join(str(level.interval_s) for level in chain) if chain else "raw"


def _source_name(source: Source) -> str:
    return "raw" if source.interval_s is None else f"rollup:{source.interval_s}"
