"""``bcx archive convert``: the CSV archive of earlier versions
(``<exchange>/<symbol>/<YYYY-MM-DD>/<HH>.csv`` with ``time_ms,time,field,value`` rows, and
``invalid/<exchange>/<symbol>.csv`` with ``field,member`` rows) into the Parquet dataset under
the same root, once. Each CSV file is deleted only after its rows are durably in the dataset;
running it again (after an interruption) converts what is left and duplicates nothing."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bcx.coldtier.dataset import Dataset

INVALID = "invalid"


def convert(root: str | os.PathLike[str], report: Callable[[str], None] = lambda _: None
            ) -> tuple[int, int]:
    """Convert every CSV file under ``root``; returns (files converted, rows added)."""
    base = Path(root)
    dataset = Dataset(base)
    converted = added = 0
    for path in sorted(base.rglob("*.csv")):
        parts = path.relative_to(base).parts
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            rows = list(reader)
        if parts[0] == INVALID and len(parts) == 3:
            exchange, symbol = parts[1], parts[2].removesuffix(".csv")
            members: dict[str, list[str]] = defaultdict(list)
            for field, member in rows:
                members[field].append(member)
            for field, found in members.items():
                added += dataset.write_invalid(exchange, symbol, field, found)
        elif len(parts) == 4:
            exchange, symbol = parts[0], parts[1]
            points: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for ms, _, field, value in rows:
                points[field].append((int(ms), value))
            for field, series in points.items():
                added += dataset.write(exchange, symbol, field, series)
        else:
            report(f"skipped {path}: not where the CSV archive keeps its files")
            continue
        path.unlink()
        converted += 1
        _prune(path.parent, base)
    return converted, added


def _prune(directory: Path, base: Path) -> None:
    """Remove the CSV layout's directories that converting left empty."""
    while directory != base:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
