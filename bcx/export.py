"""``bcx export``: a series' raw ticks or roll-up candles as CSV.

Raw rows use the archive's columns (``time_ms,time,field,value``, values verbatim), merged
across fields in time order and read a page at a time, so a week of ticks streams out in
constant memory. Candles (``--interval``) are the API's (``bcx.aggregate.candles``): any
whole number of seconds, from the roll-ups that divide it and raw ticks where none does, one
row per bucket and field (``time_ms,time,field,open,high,low,close``), built a window at a time.
Trades (``--trades``) are ``time_ms,time,price,size,side,id`` rows, verbatim, paged the same
way as raw ticks.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, TypeVar

from bcx import aggregate
from bcx.query import QueryError
from bcx.store import RollupStore
from bcx.store.readers import TickReader, TradeReader
from bcx.ticks import Point, TradeFields
from bcx.timeutil import iso_ms, now_ms

PAGE = 10_000
HEADER = ("time_ms", "time", "field", "value")
CANDLE_HEADER = ("time_ms", "time", "field", "open", "high", "low", "close")
TRADE_HEADER = ("time_ms", "time", "price", "size", "side", "id")
Item = TypeVar("Item", bound=Sequence[Any])
# The API's bounds on an interval (web/api.py MAX_INTERVAL_S).
MAX_INTERVAL_S = 365 * 86400
# Candles built per request to bcx.aggregate; a window needing too many raw ticks is halved.
WINDOW_CANDLES = 1000
# Raw rows between two progress reports.
PROGRESS_ROWS = 5000

# progress(done_ms, total_ms): how much of the exported time range is written.
Progress = Callable[[int, int], None]


class ExportError(ValueError):
    """Input the export cannot serve; the message says what to change."""


def points(store: TickReader, exchange: str, symbol: str, field: str, start_ms: int | None,
           end_ms: int | None, page: int = PAGE) -> Iterator[Point]:
    """Every point of one field in ``[start_ms, end_ms]``, oldest first, a page per round
    trip (:func:`paged`)."""
    return paged(lambda low, high, limit: store.range(exchange, symbol, field, low, high,
                                                      limit=limit), start_ms, end_ms, page)


def trade_rows(trades: TradeReader, exchange: str, symbol: str, start_ms: int | None,
               end_ms: int | None, page: int = PAGE) -> Iterator[TradeFields]:
    """Every trade in ``[start_ms, end_ms]``, oldest first, a page per round trip."""
    return paged(lambda low, high, limit: trades.range(exchange, symbol, low, high,
                                                       limit=limit), start_ms, end_ms, page)


def paged(read: Callable[[int | None, int | None, int | None], list[Item]],
          start_ms: int | None, end_ms: int | None, page: int = PAGE) -> Iterator[Item]:
    """Every item ``read(low, high, limit)`` finds in ``[start_ms, end_ms]`` (oldest first,
    each starting with its time in ms), a page per round trip. Pages are cut by time: the
    items at a page's last millisecond are read again at the start of the next page, so none
    is skipped or repeated."""
    low = start_ms
    while True:
        found = read(low, end_ms, page)
        if len(found) < page:
            yield from found
            return
        last = found[-1][0]
        whole = [point for point in found if point[0] < last]
        if not whole:  # a page's worth of points in one millisecond: read all of it at once
            yield from read(last, last, None)
            low = last + 1
            continue
        yield from whole
        low = last


def raw_rows(store: TickReader, exchange: str, symbol: str, fields: Sequence[str],
             start_ms: int | None, end_ms: int | None) -> Iterator[tuple[int, str, str]]:
    def rows(field: str) -> Iterator[tuple[int, str, str]]:
        for ms, value in points(store, exchange, symbol, field, start_ms, end_ms):
            yield ms, field, value

    return heapq.merge(*(rows(field) for field in fields), key=lambda row: (row[0], row[1]))


def first_ms(store: TickReader, rollups: RollupStore, exchange: str, symbol: str,
             fields: Sequence[str], rollup_intervals: Sequence[int]) -> int | None:
    """The oldest point or candle the series holds in any of ``fields``."""
    found = [store.oldest_ms(exchange, symbol, field) for field in fields]
    found += [rollups.oldest_ms(exchange, symbol, field, interval)
              for field in fields for interval in rollup_intervals]
    return min((ms for ms in found if ms is not None), default=None)


def _window(rollups: RollupStore, store: TickReader, exchange: str, symbol: str, field: str,
            interval_s: int, low: int, high: int, rollup_intervals: Sequence[int]
            ) -> list[list[Any]]:
    """The candles of ``[low, high]`` (``low`` on a bucket boundary), halving the window
    while it would be built from more raw ticks than one API request may fold in."""
    try:
        found: list[list[Any]] = aggregate.candles(rollups, store, exchange, symbol, field,
                                                   interval_s, low, high,
                                                   rollup_intervals)["candles"]
        return found
    except QueryError as exc:
        width = interval_s * 1000
        buckets = (high - low) // width + 1
        if buckets == 1:
            raise ExportError(f"--interval: {exc.message}") from None
        middle = low + buckets // 2 * width
        return (_window(rollups, store, exchange, symbol, field, interval_s, low, middle - 1,
                        rollup_intervals)
                + _window(rollups, store, exchange, symbol, field, interval_s, middle, high,
                          rollup_intervals))


def candle_rows(rollups: RollupStore, store: TickReader, exchange: str, symbol: str,
                fields: Sequence[str], interval_s: int, start_ms: int, end_ms: int,
                rollup_intervals: Sequence[int], progress: Progress | None = None
                ) -> Iterator[tuple[int, str, list[Any]]]:
    """(bucket start, field, [open, high, low, close]) in time, then field, order."""
    width = interval_s * 1000
    first = start_ms // width * width
    step = WINDOW_CANDLES * width
    for low in range(first, end_ms + 1, step):
        high = min(low + step - 1, end_ms)
        rows = [(row[0], field, row[1:5]) for field in fields
                for row in _window(rollups, store, exchange, symbol, field, interval_s, low,
                                   high, rollup_intervals)]
        yield from sorted(rows, key=lambda row: (row[0], row[1]))
        if progress is not None:
            progress(high - first + 1, end_ms - first + 1)


def export(store: TickReader, rollups: RollupStore, output: IO[str], exchange: str, symbol: str,
           fields: Sequence[str], start_ms: int | None = None, end_ms: int | None = None,
           interval_s: int | None = None, rollup_intervals: Sequence[int] = (),
           progress: Progress | None = None, trades: TradeReader | None = None) -> int:
    """Write the CSV (the series' trades when ``trades`` is given); returns the number of
    data rows. ``rollup_intervals``: the configured roll-ups (``[watcher] rollups``) candles
    may be read from."""
    if not store.has_series(exchange, symbol):
        raise ExportError(f"unknown series {exchange}:{symbol} (bcx:series lists the known "
                          "ones)")
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ExportError("--start is after --end")
    if interval_s is not None and not 1 <= interval_s <= MAX_INTERVAL_S:
        raise ExportError(f"--interval: a whole number of seconds from 1s to {MAX_INTERVAL_S}s")
    writer = csv.writer(output)
    rows = 0
    if trades is not None:
        if interval_s is not None:
            raise ExportError("--trades and --interval cannot be combined")
        writer.writerow(TRADE_HEADER)
        for ms, price, size, side, trade_id in trade_rows(trades, exchange, symbol, start_ms,
                                                          end_ms):
            writer.writerow((ms, iso_ms(ms), price, size, side, trade_id))
            rows += 1
        return rows
    if start_ms is None:
        start_ms = first_ms(store, rollups, exchange, symbol, fields,
                            rollup_intervals if interval_s else ())
    stop_ms = now_ms() if end_ms is None else end_ms
    if interval_s is None:
        writer.writerow(HEADER)
        for ms, field, value in raw_rows(store, exchange, symbol, fields, start_ms, end_ms):
            writer.writerow((ms, iso_ms(ms), field, value))
            rows += 1
            if progress is not None and start_ms is not None and rows % PROGRESS_ROWS == 0:
                progress(ms - start_ms, max(stop_ms, ms) - start_ms)
        return rows
    writer.writerow(CANDLE_HEADER)
    if start_ms is None or start_ms > stop_ms:  # nothing stored in any of the fields
        return 0
    for bucket, field, ohlc in candle_rows(rollups, store, exchange, symbol, fields,
                                           interval_s, start_ms, stop_ms, rollup_intervals,
                                           progress):
        writer.writerow((bucket, iso_ms(bucket), field, *ohlc))
        rows += 1
    return rows
