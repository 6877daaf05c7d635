"""The history manager: incremental OHLC roll-ups and trimming each history to its retention.

Roll-ups are rebuilt bucket by bucket from a watermark, so a pass costs in proportion to the
data that arrived since the last one, not to the history:

* The watermark of a (series, field, interval) is the start of its newest, still open bucket
  (epoch ms, ``bcx.rollups.watermark_field``): every bucket before it is complete. A pass
  re-reads the source from ``watermark - late_grace`` (rounded down to a bucket start) and
  rewrites every bucket from there on, so a tick arriving up to ``late_grace`` late lands in
  the right bucket; a later one stays in the raw history only.
* The finest interval is built from raw ticks (the ``trades`` field: from trades, as OHLCV
  buckets, ``bcx.rollups``). A coarser interval that is a multiple of a finer
  one is built from that roll-up's candles (an hour is 60 one-minute candles), so it never
  re-reads an hour of raw ticks.
* Without a watermark (first pass) the whole source is read, in pages that end on bucket
  boundaries. Each page moves the watermark forward to its end, so a first pass over a large
  history that is interrupted (a crash, a restart) resumes where it stopped.
* Each trim records its cutoff in the same hash (``trimmed:<field>[:<interval>]``); a bucket
  the cutoff falls in is never rebuilt from the part of its source that is left.

Values stay the exchange's decimal strings; they are compared as ``Decimal``.

Trimming deletes raw points older than ``raw_retention`` and candles whose bucket starts before
the roll-up's retention. With an :class:`~bcx.watcher.archive.Archive` the raw points are read,
archived and only then removed (by exact member), a page at a time: a crash between the two
leaves the points in Redis, and archiving them again is idempotent.

Both passes call ``progress()`` after every page, so the caller can show it is alive while a
long pass runs (the watcher beats its heartbeat from it).

Each series is worked on its own: a series whose roll-up, archive or trim fails is logged with
its name and the error, counted in the pass's :class:`PassReport`, and the pass goes on with the
next one. A Redis error that is not the series' own ends the pass: a lost connection or any
other transient one (it fails every series alike), and a misconfiguration
(``bcx.store.errors.advice``), which stops the watcher.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis

from bcx.config import WatcherConfig
from bcx.heartbeat import reason
from bcx.keys import series_id
from bcx.rollups import (
    TRADES,
    Candle,
    candles_from_candles,
    candles_from_points,
    candles_from_trades,
    floor_to,
    imported_field,
    keep_imported,
    watermark_field,
)
from bcx.store import FIELDS, RollupStore, Store, TradeStore
from bcx.store.errors import advice, is_transient
from bcx.ticks import Point, TradeFields
from bcx.watcher.archive import Archive, readable

log = logging.getLogger(__name__)

PAGE = 20_000  # source items read per round trip
# Fields rolled up: the quote fields as OHLC, the trades as OHLCV.
ROLLUP_FIELDS = (*FIELDS, TRADES)
# Raw sorted sets trimmed to raw_retention (and archived): ticks, trades, top-of-book sizes.
RAW_FIELDS = (*FIELDS, TRADES, "bid_size", "ask_size")


@dataclasses.dataclass
class PassReport:
    """What one pass over every series did: ``count`` candles written or items removed,
    ``invalid`` members archived as invalid, and each series that failed with its error."""

    count: int = 0
    series: int = 0
    invalid: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (series id, error)

    def summary(self) -> str:
        """``"2 of 9 series failed: binance:BTC-USDT (archive: ...)"``, naming the first one."""
        if not self.failures:
            return f"{self.series} series"
        name, error = self.failures[0]
        more = f" and {len(self.failures) - 1} more" if len(self.failures) > 1 else ""
        return f"{len(self.failures)} of {self.series} series failed: {name} ({error}){more}"


class HistoryManager:
    """One pass of roll-ups (``rollup_pass``) or trimming (``trim_pass``) over every known
    series, at an instant the caller supplies (the clock is injected by the thread loop)."""

    def __init__(self, ticks: Store, rollups: RollupStore, config: WatcherConfig,
                 archive: Archive | None = None, page: int = PAGE,
                 progress: Callable[[], None] | None = None,
                 trades: TradeStore | None = None):
        self.ticks = ticks
        self.trades = trades or TradeStore(ticks.connection, ticks.keys)
        self.rollups = rollups
        self.config = config
        self.archive = archive
        self.page = page
        self.progress = progress or (lambda: None)
        self.intervals = [int(interval) for interval, _ in config.rollups]
        self.invalid = 0  # members archived as invalid in the current pass

    # ------------------------------------------------------------------ roll-ups
    def rollup_pass(self, now_ms: int) -> PassReport:
        """Bring every roll-up up to date; ``count`` is the number of candles written."""
        return self._each_series("roll-up", lambda exchange, symbol: sum(
            self.rollup(exchange, symbol, field, interval, now_ms)
            for field in ROLLUP_FIELDS for interval in self.intervals))

    def _each_series(self, work: str, run: Callable[[str, str], int]) -> PassReport:
        """``run`` on every series in turn; a failure is that series' alone, except a
        transient or fatal Redis error, which ends the pass."""
        report = PassReport()
        self.invalid = 0
        for exchange, symbol in self.ticks.series():
            report.series += 1
            try:
                report.count += run(exchange, symbol)
            except redis.RedisError as exc:
                if is_transient(exc) or advice(exc) is not None:
                    raise
                report.failures.append(self._failed(work, exchange, symbol, exc))
            except Exception as exc:  # noqa: BLE001 - one series must not stop the others
                report.failures.append(self._failed(work, exchange, symbol, exc))
        report.invalid = self.invalid
        return report

    @staticmethod
    def _failed(work: str, exchange: str, symbol: str, exc: Exception) -> tuple[str, str]:
        name = series_id(exchange, symbol)
        log.error("%s of %s failed: %s", work, name, reason(exc),
                  exc_info=log.isEnabledFor(logging.DEBUG))
        return name, reason(exc)

    def source_interval(self, interval: int) -> int | None:
        """The coarsest finer configured interval dividing ``interval``; None means raw."""
        finer = [other for other in self.intervals if other < interval and interval % other == 0]
        return max(finer) if finer else None

    def rollup(self, exchange: str, symbol: str, field: str, interval: int, now_ms: int) -> int:
        step = interval * 1000
        source = self.source_interval(interval)
        found_mark, trimmed, imports = self.rollups.watermark_fields(
            exchange, symbol, [watermark_field(field, interval), trimmed_field(field, source),
                               imported_field(field, interval)])
        mark = None if found_mark is None else int(found_mark)
        if mark is None:
            if source is not None:
                oldest = self.rollups.oldest_ms(exchange, symbol, field, source)
            elif field == TRADES:
                oldest = self.trades.oldest_ms(exchange, symbol)
            else:
                oldest = self.ticks.oldest_ms(exchange, symbol, field)
            if oldest is None:
                return 0
            start = floor_to(oldest, step)
        else:
            start = floor_to(mark - int(self.config.late_grace * 1000), step)
        if trimmed is not None:
            # A bucket the source's trimming cut into is never rebuilt from what is left (only
            # possible with a source retention shorter than late_grace plus an interval).
            start = max(start, -floor_to(-int(trimmed), step))
        new_mark = floor_to(now_ms, step)
        written = 0
        for page_start, page_end, items in self._pages(exchange, symbol, field, source, start,
                                                       step):
            candles = candles_by_interval(items, field, source, interval)
            if imports is not None:
                # Imported buckets stay unless the live one holds at least as much data.
                candles = keep_imported(candles, self.rollups.candles(
                    exchange, symbol, field, interval, page_start, page_end))
            watermark: int | None = None
            if page_end is None:
                watermark = max(new_mark, start)
            elif mark is None or page_end + step > mark:
                # Every bucket before the next page is complete: a pass stopped here resumes
                # from it instead of reading the whole history again.
                watermark = page_end + step
            self.rollups.replace_page(exchange, symbol, field, interval, page_start, page_end,
                                      candles, watermark)
            written += len(candles)
            self.progress()
        return written

    def _pages(self, exchange: str, symbol: str, field: str, source: int | None,
               start_ms: int, step: int) -> Iterator[tuple[int, int | None, list[Any]]]:
        """(first bucket ms, last bucket ms or None for the final page, source items) pages
        of the source from ``start_ms``, each ending on a bucket boundary."""
        while True:
            items = self._read(exchange, symbol, field, source, start_ms, None, self.page)
            if len(items) < self.page:
                yield start_ms, None, items
                return
            last_bucket = floor_to(_start_of(items[-1]), step)
            complete = [item for item in items if _start_of(item) < last_bucket]
            if not complete:
                # One bucket holds more than a page: read that bucket whole.
                complete = self._read(exchange, symbol, field, source, start_ms,
                                      last_bucket + step, None)
                last_bucket += step
            yield start_ms, last_bucket - step, complete
            start_ms = last_bucket

    def _read(self, exchange: str, symbol: str, field: str, source: int | None,
              start_ms: int, end_ms: int | None, limit: int | None) -> list[Any]:
        """Source items (raw points or trades, or candles of roll-up ``source``) from
        ``start_ms`` up to ``end_ms`` exclusive."""
        if source is None and field == TRADES:
            return self.trades.page(exchange, symbol, start_ms, end_ms, limit)
        if source is None:
            return self.ticks.points_before(exchange, symbol, field, start_ms, end_ms, limit)
        return self.rollups.candles(exchange, symbol, field, source, start_ms, end_ms, limit,
                                    end_exclusive=True)

    # ------------------------------------------------------------------ retention
    def trim_pass(self, now_ms: int) -> PassReport:
        """Trim raw history and every roll-up to its retention; ``count`` is the items removed.
        A series whose archive write fails keeps that field's points (and is trimmed no further
        in this pass)."""
        return self._each_series("trim", lambda exchange, symbol: self.trim_series(
            exchange, symbol, now_ms))

    def trim_series(self, exchange: str, symbol: str, now_ms: int) -> int:
        removed = 0
        raw_cutoff = now_ms - int(self.config.raw_retention * 1000)
        cutoffs: dict[str, int] = {}
        try:
            for field in RAW_FIELDS:
                removed += self.trim_raw(exchange, symbol, field, raw_cutoff)
                cutoffs[trimmed_field(field, None)] = raw_cutoff
                if field not in ROLLUP_FIELDS:
                    continue
                for interval, retention in self.config.rollups:
                    cutoff = now_ms - int(retention * 1000)
                    removed += self.rollups.trim(exchange, symbol, field, int(interval),
                                                 cutoff)
                    cutoffs[trimmed_field(field, int(interval))] = cutoff
        finally:
            # What was trimmed before a failure is recorded all the same.
            self.rollups.record_cutoffs(exchange, symbol, cutoffs)
        if self.archive is not None:
            self.archive.settle(exchange, symbol, raw_cutoff, now_ms)
        self.progress()
        return removed

    def trim_raw(self, exchange: str, symbol: str, field: str, cutoff_ms: int) -> int:
        """Delete raw points older than ``cutoff_ms``, archiving them first when archiving."""
        if self.archive is None:
            return self.ticks.trim(exchange, symbol, field, cutoff_ms)
        removed = 0
        while True:
            members = self.ticks.members_before(exchange, symbol, field, cutoff_ms, self.page)
            if not members:
                return removed
            points, invalid = readable(members)
            if invalid:
                self.archive.write_invalid(exchange, symbol, field, invalid)
                log.warning("%s %s: %d member(s) with no valid time (%s) archived to %s",
                            series_id(exchange, symbol), field, len(invalid), invalid[0][:40],
                            self.archive.invalid_partition(exchange, symbol))
                self.invalid += len(invalid)
            self.archive.write(exchange, symbol, field, points)
            # Remove exactly what was archived: a point that arrived meanwhile waits for the
            # next page or pass instead of being deleted unarchived.
            removed += self.ticks.remove_members(exchange, symbol, field, members)
            self.progress()


def trimmed_field(field: str, interval: int | None) -> str:
    """The watermark-hash field holding the cutoff (epoch ms) of the last trim of a raw field
    (``interval`` None) or of a roll-up: everything before it may be gone."""
    return f"trimmed:{field}" if interval is None else f"trimmed:{field}:{interval}"


def candles_by_interval(items: list[Any], field: str, source: int | None, interval: int
                        ) -> list[Candle]:
    """The one per-bucket fold that differs by source: raw points (OHLC), trades (OHLCV),
    finer candles (merged)."""
    if source is not None:
        return candles_from_candles(items, interval)
    if field == TRADES:
        return candles_from_trades(items, interval)
    return candles_from_points(items, interval)


def _start_of(item: Point | TradeFields | Candle) -> int:
    return item.start_ms if isinstance(item, Candle) else item[0]
