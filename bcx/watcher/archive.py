"""The CSV archive of trimmed raw ticks: ``<root>/<exchange>/<symbol>/<YYYY-MM-DD>/<HH>.csv``.

A partition holds every field of one series for one UTC hour, one point a row
(``time_ms,time,field,value``, the value as the exchange's decimal string), sorted by time.
Writing is idempotent: a partition is rewritten as the union of what it held and the new
points, into a temporary file that is renamed over it, so archiving the same points twice (after
a crash between archive and trim) duplicates nothing and a crash mid-write loses nothing. The
file and then its directory are fsynced before ``write`` returns: the trim that follows deletes
the points from Redis, so the rename must survive a power cut too.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from bcx.ticks import Point
from bcx.timeutil import iso_ms

HEADER = ("time_ms", "time", "field", "value")
Row = tuple[int, str, str]  # (ms, field, value)


class Archive:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def partition(self, exchange: str, symbol: str, ms: int) -> Path:
        when = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return (self.root / exchange / symbol / when.strftime("%Y-%m-%d")
                / f"{when.strftime('%H')}.csv")

    def write(self, exchange: str, symbol: str, field: str, points: Iterable[Point]) -> int:
        """Add ``points`` of one field to their partitions; returns the rows that were new."""
        groups: dict[Path, set[Row]] = defaultdict(set)
        for ms, value in points:
            groups[self.partition(exchange, symbol, ms)].add((ms, field, value))
        added = 0
        for path, rows in groups.items():
            existing = read_rows(path)
            merged = existing | rows
            if len(merged) != len(existing):
                _replace(path, sorted(merged))
                added += len(merged) - len(existing)
        return added


def read_rows(path: Path) -> set[Row]:
    if not path.exists():
        return set()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return {(int(ms), field, value) for ms, _, field, value in reader}


def _replace(path: Path, rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            writer.writerows((ms, iso_ms(ms), field, value) for ms, field, value in rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
