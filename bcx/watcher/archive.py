"""The archive of trimmed raw history: the Parquet dataset of :mod:`bcx.coldtier.dataset`.

The history manager hands each page of members past ``raw_retention`` to :meth:`Archive.write`
(placeable ones) and :meth:`Archive.write_invalid` (members whose time is no integer or falls
outside the years 1 to 9999 a day partition can name: kept verbatim under ``_invalid/``, so
they are archived and trimmed like the rest, never left to block the trim of the valid points
around them). Both return only once the file and its directory are fsynced: the trim that
follows deletes the points from Redis. After a series' trim, :meth:`Archive.settle` compacts
its closed days and deletes the days past ``archive_retention``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bcx.coldtier.dataset import ArchiveError, Dataset, day_of
from bcx.ticks import Point, parse_member

__all__ = ["Archive", "ArchiveError", "readable"]


def readable(members: Iterable[str]) -> tuple[list[Point], list[str]]:
    """Split stored members into points with a day partition and members without one."""
    points: list[Point] = []
    invalid: list[str] = []
    for member in members:
        try:
            point = parse_member(member)
            day_of(point[0])
        except (ValueError, OverflowError, OSError):
            invalid.append(member)
        else:
            points.append(point)
    return points, invalid


class Archive:
    def __init__(self, root: str | os.PathLike[str], retention_s: float = 0.0):
        self.root = Path(root)
        self.dataset = Dataset(root)
        self.retention_ms = int(retention_s * 1000)

    def write(self, exchange: str, symbol: str, field: str, points: Iterable[Point]) -> int:
        """Add ``points`` of one field; returns the rows that were new."""
        return self.dataset.write(exchange, symbol, field, points)

    def invalid_partition(self, exchange: str, symbol: str) -> Path:
        return self.dataset.invalid_dir(exchange, symbol)

    def write_invalid(self, exchange: str, symbol: str, field: str, members: Iterable[str]
                      ) -> int:
        """Keep ``members`` that have no day partition verbatim; returns the rows written."""
        return self.dataset.write_invalid(exchange, symbol, field, members)

    def settle(self, exchange: str, symbol: str, raw_cutoff_ms: int, now_ms: int) -> int:
        """Compact the series' days wholly before ``raw_cutoff_ms`` (closed: no new point
        reaches them but a late one) and delete the days past the archive's retention;
        returns the days compacted."""
        if self.retention_ms > 0:
            self.dataset.expire(exchange, symbol, now_ms - self.retention_ms)
        return self.dataset.compact(exchange, symbol, raw_cutoff_ms)

    def usage(self) -> tuple[int, str | None]:
        """(bytes on disk, oldest date held or None)."""
        return self.dataset.usage()
