"""The CSV archive of trimmed raw ticks: ``<root>/<exchange>/<symbol>/<YYYY-MM-DD>/<HH>.csv``.

A partition holds every field of one series for one UTC hour, one point a row
(``time_ms,time,field,value``, the value as the exchange's decimal string), sorted by time.
Writing is idempotent: a partition is rewritten as the union of what it held and the new
points, into a temporary file that is renamed over it, so archiving the same points twice (after
a crash between archive and trim) duplicates nothing and a crash mid-write loses nothing. The
file and then its directory are fsynced before ``write`` returns: the trim that follows deletes
the points from Redis, so the rename must survive a power cut too.

A stored member that has no place in that layout (its time is no integer, or falls outside the
years 1 to 9999 that a partition name can hold) is kept verbatim in
``<root>/invalid/<exchange>/<symbol>.csv`` (``field,member``), written the same way: such a
member is past retention like the rest, so it is archived and trimmed, never left to block the
trim of the valid points around it.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bcx.ticks import Point, parse_member
from bcx.timeutil import iso_ms

HEADER = ("time_ms", "time", "field", "value")
INVALID_HEADER = ("field", "member")
INVALID_DIR = "invalid"
Row = tuple[int, str, str]  # (ms, field, value)


class ArchiveError(Exception):
    """Writing the archive failed (its directory is missing or unwritable, the disk is full):
    the points stay in Redis."""


def readable(members: Iterable[str]) -> tuple[list[Point], list[str]]:
    """Split stored members into points with an hour partition and members without one."""
    points: list[Point] = []
    invalid: list[str] = []
    for member in members:
        try:
            point = parse_member(member)
            iso_ms(point[0])  # the CSV's time column, the same calendar range as the partition
        except (ValueError, OverflowError, OSError):
            invalid.append(member)
        else:
            points.append(point)
    return points, invalid


class Archive:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def partition(self, exchange: str, symbol: str, ms: int) -> Path:
        when = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return (self.root / exchange / symbol / when.strftime("%Y-%m-%d")
                / f"{when.strftime('%H')}.csv")

    def write(self, exchange: str, symbol: str, field: str, points: Iterable[Point]) -> int:
        """Add ``points`` of one field (placeable ones, as :func:`readable` returns them) to
        their partitions; returns the rows that were new."""
        groups: dict[Path, set[Row]] = defaultdict(set)
        for ms, value in points:
            groups[self.partition(exchange, symbol, ms)].add((ms, field, value))
        added = 0
        with _failing_as_archive_error():
            for path, rows in groups.items():
                existing = read_rows(path)
                merged = existing | rows
                if len(merged) != len(existing):
                    _replace(path, HEADER, [(ms, iso_ms(ms), field, value)
                                            for ms, field, value in sorted(merged)])
                    added += len(merged) - len(existing)
        return added

    def invalid_partition(self, exchange: str, symbol: str) -> Path:
        return self.root / INVALID_DIR / exchange / f"{symbol}.csv"

    def write_invalid(self, exchange: str, symbol: str, field: str, members: Iterable[str]
                      ) -> int:
        """Keep ``members`` that have no hour partition verbatim; returns the rows that were new."""
        path = self.invalid_partition(exchange, symbol)
        with _failing_as_archive_error():
            existing = _read_invalid(path)
            merged = existing | {(field, member) for member in members}
            if len(merged) != len(existing):
                _replace(path, INVALID_HEADER, sorted(merged))
        return len(merged) - len(existing)


@contextmanager
def _failing_as_archive_error() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise ArchiveError(f"archive: {exc}") from exc


def read_rows(path: Path) -> set[Row]:
    if not path.exists():
        return set()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return {(int(ms), field, value) for ms, _, field, value in reader}


def _read_invalid(path: Path) -> set[tuple[str, str]]:
    if not path.exists():
        return set()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return {(field, member) for field, member in reader}


def _replace(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
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
