"""``bcx export``: a series' raw ticks or roll-up candles as CSV.

Raw rows use the archive's columns (``time_ms,time,field,value``, values verbatim), merged
across fields in time order and read a page at a time, so a week of ticks streams out in
constant memory. Candles (``--interval``) come from the roll-up of that interval. Trades
(``--trades``) are ``time_ms,time,price,size,side,id`` rows, verbatim, paged the same way.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO, TypeVar

from bcx.store import RollupStore, Store, TradeStore
from bcx.ticks import Point, TradeFields
from bcx.timeutil import iso_ms
from bcx.watcher.archive import HEADER

PAGE = 10_000
CANDLE_HEADER = ("time_ms", "time", "open", "high", "low", "close", "count")
TRADE_HEADER = ("time_ms", "time", "price", "size", "side", "id")
Item = TypeVar("Item", bound=Sequence[Any])


class ExportError(ValueError):
    """Input the export cannot serve; the message says what to change."""


def points(store: Store, exchange: str, symbol: str, field: str, start_ms: int | None,
           end_ms: int | None, page: int = PAGE) -> Iterator[Point]:
    """Every point of one field in ``[start_ms, end_ms]``, oldest first, a page per round
    trip (:func:`paged`)."""
    return paged(lambda low, high, limit: store.range(exchange, symbol, field, low, high,
                                                      limit=limit), start_ms, end_ms, page)


def trade_rows(trades: TradeStore, exchange: str, symbol: str, start_ms: int | None,
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


def raw_rows(store: Store, exchange: str, symbol: str, fields: Sequence[str],
             start_ms: int | None, end_ms: int | None) -> Iterator[tuple[int, str, str]]:
    def rows(field: str) -> Iterator[tuple[int, str, str]]:
        for ms, value in points(store, exchange, symbol, field, start_ms, end_ms):
            yield ms, field, value

    return heapq.merge(*(rows(field) for field in fields), key=lambda row: (row[0], row[1]))


def export(store: Store, rollups: RollupStore, output: TextIO, exchange: str, symbol: str,
           fields: Sequence[str], start_ms: int | None = None, end_ms: int | None = None,
           interval_s: int | None = None, trades: TradeStore | None = None) -> int:
    """Write the CSV (the series' trades when ``trades`` is given); returns the number of
    data rows."""
    if not store.has_series(exchange, symbol):
        raise ExportError(f"unknown series {exchange}:{symbol} (bcx:series lists the known "
                          "ones)")
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ExportError("--start is after --end")
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
    if interval_s is None:
        writer.writerow(HEADER)
        for ms, field, value in raw_rows(store, exchange, symbol, fields, start_ms, end_ms):
            writer.writerow((ms, iso_ms(ms), field, value))
            rows += 1
        return rows
    if len(fields) != 1:
        raise ExportError("candles are exported for one --field at a time")
    writer.writerow(CANDLE_HEADER)
    for candle in rollups.candles(exchange, symbol, fields[0], interval_s, start_ms, end_ms):
        writer.writerow((candle.start_ms, iso_ms(candle.start_ms), candle.open, candle.high,
                         candle.low, candle.close, candle.count))
        rows += 1
    return rows
