"""Reading the archive's Parquet dataset back the way its users do: pyarrow.dataset."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

PARTITIONS = ds.partitioning(pa.schema([("exchange", pa.string()), ("symbol", pa.string()),
                                        ("date", pa.string())]), flavor="hive")


def dataset_rows(root: Path) -> list[tuple[str, str, str, int, str, str]]:
    """(exchange, symbol, date, ms, field, value) of every row, the date checked against the
    row's time."""
    files = [str(path) for path in root.rglob("*.parquet")
             if not path.relative_to(root).parts[0].startswith(("_", "."))]
    if not files:
        return []
    table = ds.dataset(files, format="parquet", partitioning=PARTITIONS,
                       partition_base_dir=str(root)).to_table()
    rows = list(zip(*(table.column(name).to_pylist() for name in
                      ("exchange", "symbol", "date", "time", "field", "value")), strict=True))
    from bcx.coldtier.dataset import day_of
    assert all(day_of(row[3]) == row[2] for row in rows)
    return rows


def invalid_rows(root: Path, exchange: str, symbol: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for path in sorted((root / "_invalid" / exchange / symbol).glob("*.parquet")):
        table = pq.read_table(path)
        rows += zip(table.column("field").to_pylist(), table.column("member").to_pylist(),
                    strict=True)
    return sorted(rows)
