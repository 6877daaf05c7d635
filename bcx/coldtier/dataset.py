"""The Parquet dataset of archived raw history, one directory tree under ``archive_dir``:

    exchange=<ex>/symbol=<sym>/date=<YYYY-MM-DD>/part.<lo>.<hi>.<field>.<hash>.parquet
    exchange=<ex>/symbol=<sym>/date=<YYYY-MM-DD>/day.parquet        (a compacted, closed day)
    _invalid/<ex>/<sym>/<hash>.parquet                            (members with no usable time)

Hive partitions (values URI-quoted), zstd, columns ``time`` (int64 epoch ms), ``field``
(dictionary: price, bid, ask, bid_size, ask_size, trades) and ``value`` (the stored decimal text
verbatim; for a trade the member after ``"<ms>:"``). ``pyarrow.dataset.dataset(root,
partitioning="hive")`` reads it whole; names starting with ``_`` or ``.`` are skipped by it.

Files are added, never rewritten: each write is a new part holding one field's points of one
day, written to a hidden temporary name, fsynced, renamed and its directory fsynced before the
caller may delete the points from Redis. A part's name carries its field and time range, so a
write first reads the parts (and day file) it overlaps and adds only rows not already there: an
archive pass re-run after a crash duplicates nothing. Compaction merges a closed day's files into
``day.parquet``, whose metadata names the parts it absorbed; those are deleted after it, and a
reader ignores any still there (a crash between the two), so no row is read twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bcx.ticks import Point

SCHEMA = pa.schema([("time", pa.int64()), ("field", pa.dictionary(pa.int32(), pa.string())),
                    ("value", pa.string())])
INVALID_SCHEMA = pa.schema([("field", pa.string()), ("member", pa.string())])
INVALID_DIR = "_invalid"
DAY_FILE = "day.parquet"
TEMPORARY = ".tmp"  # a file being written (hidden: its name starts with a dot)
REPLACES = b"bcx.replaces"
DAY_MS = 86_400_000
Row = tuple[int, str, str]  # (ms, field, value)


class ArchiveError(Exception):
    """Writing the archive failed (its directory is missing or unwritable, the disk is full):
    the points stay in Redis."""


@contextmanager
def failing_as_archive_error() -> Iterator[None]:
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveError(f"archive: {exc}") from exc


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def day_start_ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


class Dataset:
    """Writes and reads the dataset under ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    # ------------------------------------------------------------------ layout
    def series_dir(self, exchange: str, symbol: str) -> Path:
        return (self.root / f"exchange={quote(exchange, safe='')}"
                / f"symbol={quote(symbol, safe='')}")

    def days(self, exchange: str, symbol: str) -> list[str]:
        """The dates (``YYYY-MM-DD``) the series has a partition for, oldest first."""
        try:
            names = os.listdir(self.series_dir(exchange, symbol))
        except FileNotFoundError:
            return []
        return sorted(name[5:] for name in names if name.startswith("date="))

    def invalid_dir(self, exchange: str, symbol: str) -> Path:
        return self.root / INVALID_DIR / quote(exchange, safe="") / quote(symbol, safe="")

    # ------------------------------------------------------------------ writes
    def write(self, exchange: str, symbol: str, field: str, points: Iterable[Point]) -> int:
        """Add ``points`` of one field, a new part per day touched; returns the rows that
        were new (those already in the dataset are left out)."""
        groups: dict[str, set[Point]] = defaultdict(set)
        for point in points:
            groups[day_of(point[0])].add(point)
        added = 0
        with failing_as_archive_error():
            for day, found in groups.items():
                directory = self.series_dir(exchange, symbol) / f"date={day}"
                low, high = min(ms for ms, _ in found), max(ms for ms, _ in found)
                fresh = sorted(found - set(_read_dir(directory, field, low, high)))
                if not fresh:
                    continue
                digest = hashlib.sha1(repr(fresh).encode()).hexdigest()[:12]
                table = pa.table({"time": pa.array([ms for ms, _ in fresh], pa.int64()),
                                  "field": pa.array([field] * len(fresh)).dictionary_encode(),
                                  "value": pa.array([value for _, value in fresh], pa.string())},
                                 schema=SCHEMA)
                _publish(directory / f"part.{low}.{high}.{field}.{digest}.parquet", table)
                added += len(fresh)
        return added

    def write_invalid(self, exchange: str, symbol: str, field: str, members: Iterable[str]
                      ) -> int:
        """Keep ``members`` that have no day verbatim, in a file named by its content (so the
        same members written twice are one file); returns how many were written."""
        rows = sorted(set(members))
        if not rows:
            return 0
        digest = hashlib.sha1(repr((field, rows)).encode()).hexdigest()[:16]
        path = self.invalid_dir(exchange, symbol) / f"{digest}.parquet"
        with failing_as_archive_error():
            if path.exists():
                return 0
            _publish(path, pa.table({"field": [field] * len(rows), "member": rows},
                                    schema=INVALID_SCHEMA))
        return len(rows)

    def compact(self, exchange: str, symbol: str, before_ms: int) -> int:
        """Merge the files of every day that ends at or before ``before_ms`` into its
        ``day.parquet`` (and finish a compaction a crash interrupted); returns the days
        compacted."""
        done = 0
        with failing_as_archive_error():
            for day in self.days(exchange, symbol):
                if day_start_ms(day) + DAY_MS > before_ms:
                    break
                directory = self.series_dir(exchange, symbol) / f"date={day}"
                day_path = directory / DAY_FILE
                replaced = _replaced(day_path)
                for name in replaced:  # left by a compaction stopped before its deletes
                    _unlink(directory / name)
                for name in os.listdir(directory):  # left by a write killed mid-way
                    if name.startswith(".") and name.endswith(TEMPORARY):
                        _unlink(directory / name)
                parts = _parts(directory)
                if not parts:
                    continue
                rows = sorted(set(_read_dir(directory, None, None, None)),
                              key=lambda row: (row[2], row[0], row[1]))
                table = pa.table({"time": pa.array([r[0] for r in rows], pa.int64()),
                                  "field": pa.array([r[2] for r in rows]).dictionary_encode(),
                                  "value": pa.array([r[1] for r in rows], pa.string())},
                                 schema=SCHEMA)
                _publish(day_path, table, {REPLACES: json.dumps(sorted(parts)).encode()})
                for name in parts:
                    _unlink(directory / name)
                _fsync_dir(directory)
                done += 1
        return done

    def expire(self, exchange: str, symbol: str, before_ms: int) -> int:
        """Delete the days that end at or before ``before_ms``; returns how many went."""
        gone = 0
        with failing_as_archive_error():
            for day in self.days(exchange, symbol):
                if day_start_ms(day) + DAY_MS > before_ms:
                    break
                shutil.rmtree(self.series_dir(exchange, symbol) / f"date={day}")
                gone += 1
            if gone:
                _fsync_dir(self.series_dir(exchange, symbol))
        return gone

    # ------------------------------------------------------------------ reads
    def read(self, exchange: str, symbol: str, field: str, start_ms: int | None,
             end_ms: int | None) -> list[Point]:
        """Points of one field with ``start_ms <= time <= end_ms``, oldest first."""
        found: list[Point] = []
        for day in self.days(exchange, symbol):
            first = day_start_ms(day)
            if (end_ms is not None and first > end_ms
                    or start_ms is not None and first + DAY_MS <= start_ms):
                continue
            found.extend(_read_dir(self.series_dir(exchange, symbol) / f"date={day}", field,
                                   start_ms, end_ms))
        return found

    def count(self, exchange: str, symbol: str, field: str, start_ms: int | None,
              end_ms: int | None) -> tuple[int, int | None]:
        """(rows of one field in ``[start_ms, end_ms]``, the newest one's time or None),
        reading the time column only."""
        total, newest = 0, None
        for day in self.days(exchange, symbol):
            first = day_start_ms(day)
            if (end_ms is not None and first > end_ms
                    or start_ms is not None and first + DAY_MS <= start_ms):
                continue
            directory = self.series_dir(exchange, symbol) / f"date={day}"
            for path in _files(directory, field, start_ms, end_ms):
                times = pq.read_table(path, columns=["time"],
                                      filters=_filters(field, start_ms, end_ms)).column("time")
                if len(times):
                    total += len(times)
                    top = pc.max(times).as_py()
                    newest = top if newest is None else max(newest, top)
        return total, newest

    def usage(self) -> tuple[int, str | None]:
        """(bytes on disk, oldest date held or None)."""
        size, oldest = 0, None
        if not self.root.is_dir():
            return 0, None
        for directory, _, files in os.walk(self.root):
            for name in files:
                try:
                    size += os.stat(os.path.join(directory, name)).st_size
                except FileNotFoundError:
                    continue
            base = os.path.basename(directory)
            if base.startswith("date=") and files and (oldest is None or base[5:] < oldest):
                oldest = base[5:]
        return size, oldest


def _parts(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [name for name in names if name.startswith("part.") and name.endswith(".parquet")]


def _replaced(day_path: Path) -> list[str]:
    if not day_path.exists():
        return []
    meta = pq.read_schema(day_path).metadata or {}
    replaced: list[str] = json.loads(meta.get(REPLACES, b"[]"))
    return replaced


def _filters(field: str | None, low: int | None, high: int | None) -> list[Any] | None:
    filters: list[Any] = []
    if field is not None:
        filters.append(("field", "=", field))
    if low is not None:
        filters.append(("time", ">=", low))
    if high is not None:
        filters.append(("time", "<=", high))
    return filters or None


def _files(directory: Path, field: str | None, low: int | None, high: int | None
           ) -> list[Path]:
    """The files of one day directory that may hold rows of ``field`` in ``[low, high]``
    (a compaction's replaced parts left out)."""
    day_path = directory / DAY_FILE
    replaced = set(_replaced(day_path))
    files = [day_path] if day_path.exists() else []
    for name in _parts(directory):
        if name in replaced:
            continue
        _, lo, hi, part_field, _ = name.removesuffix(".parquet").split(".")
        if field is not None and (part_field != field or high is not None and int(lo) > high
                                  or low is not None and int(hi) < low):
            continue
        files.append(directory / name)
    return files


@overload
def _read_dir(directory: Path, field: str, low: int | None, high: int | None) -> list[Point]: ...


@overload
def _read_dir(directory: Path, field: None, low: int | None, high: int | None
              ) -> list[tuple[int, str, str]]: ...


def _read_dir(directory: Path, field: str | None, low: int | None, high: int | None
              ) -> list[Point] | list[tuple[int, str, str]]:
    """Rows of one day directory: (ms, value) of ``field`` in ``[low, high]``, or with
    ``field`` None every row as (ms, value, field)."""
    files = _files(directory, field, low, high)
    out: list[Any] = []
    for path in files:  # each sorted by (field,) time, value
        table = pq.read_table(path, filters=_filters(field, low, high))
        times = table.column("time").to_pylist()
        values = table.column("value").to_pylist()
        if field is None:
            fields = table.column("field").to_pylist()
            out.extend(zip(times, values, fields, strict=True))
        else:
            out.extend(zip(times, values, strict=True))
    # One file is in order already; several (parts, or a day file and late parts) are merged.
    return out if len(files) <= 1 else sorted(set(out))


def _publish(path: Path, table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> None:
    """Write ``table`` to ``path`` durably: a hidden temporary name, fsync, rename, fsync of the
    directory."""
    created = [parent for parent in (path.parent, *path.parent.parents)
               if not parent.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    temporary = path.parent / f".{path.name}.{os.getpid()}{TEMPORARY}"
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle, compression="zstd", compression_level=9,
                           # pyarrow takes the columns' names too; its stubs say bool only.
                           use_dictionary=["field", "value"],  # type: ignore[arg-type]
                           column_encoding={"time": "DELTA_BINARY_PACKED"})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        _unlink(temporary)
        raise
    _fsync_dir(path.parent)
    for directory in created:  # a new directory must be durable in its parent too
        _fsync_dir(directory.parent)


def _fsync_dir(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _unlink(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
