"""``bcx backfill``: import a venue's historical candles into the roll-ups.

Each page of the venue's candles endpoint (bcx.rest.<venue>) becomes buckets of the
``price`` roll-up (OHLC, the venue's trade count) and of the ``trades`` roll-up (OHLCV),
marked as imported (member suffix ``:i``, bcx.rollups.Candle.imported). A bucket the live
roll-ups built is never replaced by an import; the history manager in turn keeps an imported
bucket unless its own holds at least as much data (bcx.rollups.keep_imported).

Resumable and idempotent: every page is written with the range it covered, in one MULTI,
into the watermark-hash field ``imported:<field>:<interval>``; a run imports only the parts of
its range no earlier run covered, so a second run adds nothing and an interrupted one goes on
where it stopped.

Where the venue gives no quote or taker-buy volume (Coinbase, Bitfinex), the quote volume is
estimated as volume x (high + low + close) / 3 and the taker-buy volume is left empty
(unknown; summed as 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import ModuleType

from bcx.exchanges.base import MalformedFrame
from bcx.keys import series_id
from bcx.rest.client import RestClient
from bcx.rollups import (
    TRADES,
    Candle,
    dec_text,
    floor_to,
    imported_field,
    watermark_field,
)
from bcx.store import Stores
from bcx.timeutil import iso_ms

FIELDS = ("price", TRADES)
# Missing ranges listed by name in the summary.
MISSING_SHOWN = 5

Range = tuple[int, int]  # [start ms, end ms)


class BackfillError(Exception):
    """A request the user can fix (an interval the venue does not serve, a bad range)."""


@dataclass
class ImportReport:
    series: str
    interval_s: int
    start_ms: int
    end_ms: int
    requests: int = 0
    imported: int = 0  # buckets written (per bucket, not per field)
    kept_live: int = 0  # buckets the live roll-ups already built: left alone
    already: int = 0  # buckets of the range an earlier run covered
    missing: list[Range] = field(default_factory=list)  # ranges the venue had no candle for

    @property
    def missing_buckets(self) -> int:
        return sum((end - start) // (self.interval_s * 1000) for start, end in self.missing)

    def summary(self) -> str:
        lines = [f"{self.series}: {self.imported} candles of {self.interval_s}s imported from "
                 f"{iso_ms(self.start_ms)} to {iso_ms(self.end_ms)} in {self.requests} "
                 f"requests; {self.already} already imported, {self.kept_live} built live "
                 f"and kept"]
        if self.missing:
            shown = ", ".join(f"{iso_ms(a)} to {iso_ms(b)}"
                              for a, b in self.missing[:MISSING_SHOWN])
            more = (f" and {len(self.missing) - MISSING_SHOWN} more ranges"
                    if len(self.missing) > MISSING_SHOWN else "")
            lines.append(f"the venue had no candle for {self.missing_buckets} buckets: "
                         f"{shown}{more}")
        else:
            lines.append("the venue had a candle for every bucket")
        return "\n".join(lines)


# --------------------------------------------------------------------------- ranges (pure)
def parse_ranges(text: str | None) -> list[Range]:
    out = []
    for part in (text or "").split(","):
        start, sep, end = part.partition("-")
        if sep and start.isdigit() and end.isdigit():
            out.append((int(start), int(end)))
    return merge(out)


def format_ranges(ranges: Sequence[Range]) -> str:
    return ",".join(f"{start}-{end}" for start, end in merge(ranges))


def merge(ranges: Sequence[Range]) -> list[Range]:
    out: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(want: Range, done: Sequence[Range]) -> list[Range]:
    """The parts of ``want`` no range of ``done`` covers."""
    out, at = [], want[0]
    for start, end in merge(done):
        if end <= at or start >= want[1]:
            continue
        if start > at:
            out.append((at, start))
        at = max(at, end)
    if at < want[1]:
        out.append((at, want[1]))
    return out


def pages(todo: Sequence[Range], step: int, limit: int) -> list[Range]:
    """``todo`` cut into request-sized pages of at most ``limit`` buckets."""
    out = []
    for start, end in todo:
        while start < end:
            out.append((start, min(end, start + limit * step)))
            start = out[-1][1]
    return out


def as_price(candle: Candle) -> Candle:
    return Candle(candle.start_ms, candle.open, candle.high, candle.low, candle.close,
                  candle.count, imported=True)


def as_trades(candle: Candle) -> Candle:
    """The OHLCV bucket of an imported candle, its quote volume estimated if absent."""
    quote = candle.quote
    if quote is None:
        typical = (Decimal(candle.high) + Decimal(candle.low) + Decimal(candle.close)) / 3
        quote = dec_text((Decimal(candle.volume or 0) * typical).quantize(Decimal("1e-8")))
    return Candle(candle.start_ms, candle.open, candle.high, candle.low, candle.close,
                  candle.count, candle.volume or "0", quote, candle.buy or "", imported=True)


# --------------------------------------------------------------------------- the import
def run_import(stores: Stores, client: RestClient, venue: ModuleType, exchange: str,
               symbol: str, interval_s: int, start_ms: int, end_ms: int,
               rollup_intervals: Sequence[int],
               progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import ``[start_ms, end_ms)`` (aligned to buckets) of ``interval_s`` candles."""
    intervals = getattr(venue, "INTERVALS", None)
    if intervals is not None and interval_s not in intervals:
        raise BackfillError(f"{exchange} serves candles of "
                            f"{', '.join(f'{s}s' for s in sorted(intervals))}, not {interval_s}s")
    if interval_s not in rollup_intervals:
        raise BackfillError(f"{interval_s}s is no roll-up interval ([watcher] rollups: "
                            f"{', '.join(f'{s}s' for s in rollup_intervals)})")
    step = interval_s * 1000
    start_ms, end_ms = floor_to(start_ms, step), -(-end_ms // step) * step
    if end_ms <= start_ms:
        raise BackfillError("--end must be after --start")
    report = ImportReport(series_id(exchange, symbol), interval_s, start_ms, end_ms)
    rollups = stores.rollups
    done = parse_ranges(rollups.watermark_fields(exchange, symbol,
                                                 [imported_field(TRADES, interval_s)])[0])
    todo = subtract((start_ms, end_ms), done)
    report.already = ((end_ms - start_ms) - sum(b - a for a, b in todo)) // step
    work = pages(todo, step, venue.CANDLES_LIMIT)
    total = sum(b - a for a, b in work) // step
    finished = 0
    if progress is not None:
        progress(0, total)
    if work:
        stores.registry.add([series_id(exchange, symbol)])
    for page_start, page_end in work:
        body, _ = client.fetch(venue.candles_request(symbol, interval_s, page_start, page_end))
        report.requests += 1
        try:
            found = [c for c in venue.read_candles(body) if page_start <= c.start_ms < page_end]
        except MalformedFrame as exc:
            raise BackfillError(f"{exchange} answered something unreadable: {exc}") from None
        _note_missing(report, page_start, page_end, step, {c.start_ms for c in found})
        done = merge([*done, (page_start, page_end)])
        for name in FIELDS:
            report_kept = _write(stores, exchange, symbol, name, interval_s, page_start,
                                 page_end, found, done, rollup_intervals)
        report.kept_live += report_kept
        report.imported += len(found) - report_kept
        finished += (page_end - page_start) // step
        if progress is not None:
            progress(finished, total)
    return report


def _note_missing(report: ImportReport, start: int, end: int, step: int, have: set[int]
                  ) -> None:
    for bucket in range(start, end, step):
        if bucket in have:
            continue
        if report.missing and report.missing[-1][1] == bucket:
            report.missing[-1] = (report.missing[-1][0], bucket + step)
        else:
            report.missing.append((bucket, bucket + step))


def _write(stores: Stores, exchange: str, symbol: str, name: str, interval_s: int,
           page_start: int, page_end: int, found: Sequence[Candle], done: Sequence[Range],
           rollup_intervals: Sequence[int]) -> int:
    """Write one field's buckets of a page; returns how many live ones were kept."""
    rollups = stores.rollups
    live = {c.start_ms for c in rollups.candles(exchange, symbol, name, interval_s, page_start,
                                                page_end, end_exclusive=True)
            if not c.imported}
    shape = as_trades if name == TRADES else as_price
    candles = [shape(c) for c in found if c.start_ms not in live]
    marks: dict[str, str | int] = {imported_field(name, interval_s): format_ranges(done)}
    current = rollups.watermark_fields(exchange, symbol, [
        watermark_field(name, interval_s),
        *(watermark_field(name, coarse) for coarse in _coarser(interval_s, rollup_intervals))])
    if ((current[0] is None or int(current[0]) < page_end)
            and not _has_raw(stores, exchange, symbol, name)):
        # Nothing live to roll up: the roll-up is complete up to the import, so readers use it.
        marks[watermark_field(name, interval_s)] = page_end
    for coarse, mark in zip(_coarser(interval_s, rollup_intervals), current[1:], strict=True):
        # Coarser roll-ups built past the page are rebuilt from it on the next pass.
        if mark is not None and int(mark) > page_start:
            marks[watermark_field(name, coarse)] = floor_to(page_start, coarse * 1000)
    rollups.import_candles(exchange, symbol, name, interval_s, candles, marks)
    return sum(1 for c in found if c.start_ms in live)


def _coarser(interval_s: int, rollup_intervals: Sequence[int]) -> list[int]:
    return [i for i in rollup_intervals if i > interval_s and i % interval_s == 0]


def _has_raw(stores: Stores, exchange: str, symbol: str, name: str) -> bool:
    if name == TRADES:
        return stores.trades.oldest_ms(exchange, symbol) is not None
    return stores.ticks.oldest_ms(exchange, symbol, name) is not None
