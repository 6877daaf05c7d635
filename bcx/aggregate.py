"""Candles and range statistics: served from the OHLC roll-ups where their watermark says they
are complete, with the raw ticks after the watermark folded in, so long ranges never read raw
history and recent data is never missing."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bcx.keys import series_id
from bcx.query import QueryError, num
from bcx.rollups import Candle, watermark_field
from bcx.store import RollupStore, Store

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
            values = [num(candle.open), num(candle.high), num(candle.low), num(candle.close)]
            if None not in values:
                self.add(candle.start_ms, *values, candle.count)  # type: ignore[arg-type]

    def add_points(self, points: Iterable[tuple[int, str]]) -> None:
        for ms, text in points:
            value = num(text)
            if value is not None:
                self.add(ms, value, value, value, value, 1)


def candles(rollup_store: RollupStore, store: Store, exchange: str, symbol: str,
            field: str, interval_s: int | None, start_ms: int, end_ms: int,
            rollups: Sequence[int]) -> dict[str, Any]:
    """Candles ``[ms, open, high, low, close]`` of ``interval_s`` whose bucket start lies in
    the range (the first bucket is aligned down, so it holds its whole interval)."""
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
    rows = [[start, *row[:4]] for start, row in sorted(buckets.rows.items()) if start <= end_ms]
    return {"series": series_id(exchange, symbol), "field": field, "interval": interval_s,
            "start": first, "end": end_ms, "source": _chain_name(chain),
            "count": len(rows), "candles": rows}


def stats(rollup_store: RollupStore, store: Store, exchange: str, symbol: str, field: str,
          start_ms: int, end_ms: int, rollups: Sequence[int]) -> dict[str, Any]:
    """Count, min, max, mean, median, std, first, last, change % of one field and the
    ask - bid spread's statistics. Exact from raw ticks for short ranges; from roll-ups for
    ranges holding more than STATS_RAW_MAX ticks, where mean, median and std are taken over
    bucket closes weighted by tick count (``approximate`` says so)."""
    source = Source(None, start_ms)
    if _needs_rollups(store, exchange, symbol, field, start_ms, end_ms):
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
    spreads = spread_series(series["bid"], series["ask"])
    values = [value for _, value, _ in spreads]
    out["spread"] = {"count": len(values),
                     "min": min(values) if values else None,
                     "max": max(values) if values else None,
                     "mean": _clean(statistics.fmean(values)) if values else None,
                     "last": values[-1] if values else None}
    return out


# A sample is (ms, representative value, weight) plus its low and high: a raw tick is one
# sample of weight 1; a roll-up bucket is its close weighted by its tick count.
Sample = tuple[int, float, int, float, float, float]


def _samples(rollup_store: RollupStore, store: Store, exchange: str, symbol: str,
             field: str, source: Source, start_ms: int, end_ms: int) -> list[Sample]:
    out: list[Sample] = []
    raw_from = start_ms
    if source.interval_s is not None:
        for candle in rollup_store.candles(exchange, symbol, field, source.interval_s,
                                           start_ms, min(end_ms, source.cut_ms - 1)):
            o, h, low, c = (num(candle.open), num(candle.high), num(candle.low),
                            num(candle.close))
            if o is not None and h is not None and low is not None and c is not None:
                out.append((candle.start_ms, c, candle.count, low, h, o))
        raw_from = max(start_ms, source.cut_ms)
    for ms, text in store.range(exchange, symbol, field, raw_from, end_ms):
        value = num(text)
        if value is not None:
            out.append((ms, value, 1, value, value, value))
    return out


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


def spread_series(bids: list[Sample], asks: list[Sample]) -> list[tuple[int, float, int]]:
    """``ask - bid`` at each time either side changed, once both are known (a bid and an ask
    of the same millisecond are one update, not two)."""
    merged = sorted([(s[0], 0, s[1]) for s in bids] + [(s[0], 1, s[1]) for s in asks])
    sides: list[float | None] = [None, None]
    out = []
    for index, (ms, side, value) in enumerate(merged):
        sides[side] = value
        later_same_ms = index + 1 < len(merged) and merged[index + 1][0] == ms
        if sides[0] is not None and sides[1] is not None and not later_same_ms:
            out.append((ms, _clean(sides[1] - sides[0]), 1))
    return out


def _needs_rollups(store: Store, exchange: str, symbol: str, field: str, start_ms: int,
                   end_ms: int) -> bool:
    """Long ranges, and ranges reaching back before the oldest raw tick kept."""
    count, oldest = store.count_and_oldest(exchange, symbol, field, start_ms, end_ms)
    return count > STATS_RAW_MAX or (oldest is not None and oldest > start_ms)


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
