"""The history manager: roll-ups against OHLC computed by hand, retention, the CSV archive."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from bcx.config import WatcherConfig
from bcx.keys import Keys
from bcx.store import RollupStore, Store
from bcx.ticks import Tick
from bcx.watcher.archive import Archive
from bcx.watcher.history import HistoryManager
from tests.archive_support import dataset_rows
from tests.conftest import DATA

QUOTES = ("USDT", "USDC", "BRL", "ETH", "BNB", "AUD")


def binance_bids() -> list[Tick]:
    """bookTicker frames of the recording as ticks stamped with their receive time."""
    ticks = []
    for line in (DATA / "binance_bookticker.session.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["dir"] != "recv":
            continue
        frame = json.loads(record["raw"])
        if not frame.get("stream", "").endswith("@bookTicker"):
            continue
        raw = frame["data"]["s"]
        quote = next(q for q in QUOTES if raw.endswith(q))
        symbol = f"{raw[:-len(quote)]}-{quote}"
        ticks.append(Tick("binance", symbol, int(record["ts"] * 1000), bid=frame["data"]["b"],
                          ask=frame["data"]["a"]))
    return ticks


def hand_ohlc(ticks: list[Tick], interval_s: int) -> dict[str, list[tuple]]:
    """symbol -> [(start ms, open, high, low, close, count)] of the bids, computed directly:
    exact repeats are stored once, and equal times order by value as Redis orders members."""
    points: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for tick in ticks:
        points[tick.symbol].add((tick.ms, tick.bid))
    out = {}
    for symbol, found in points.items():
        buckets: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for ms, value in sorted(found):
            buckets[ms // (interval_s * 1000) * interval_s * 1000].append((ms, value))
        out[symbol] = [
            (start, rows[0][1], max((v for _, v in rows), key=Decimal),
             min((v for _, v in rows), key=Decimal), rows[-1][1], len(rows))
            for start, rows in sorted(buckets.items())]
    return out


def stored_ohlc(r: redis.Redis, keys: Keys, symbol: str, interval_s: int) -> list[tuple]:
    return [(c.start_ms, c.open, c.high, c.low, c.close, c.count)
            for c in RollupStore(r, keys).candles("binance", symbol, "bid", interval_s)]


def stores(r: redis.Redis, keys: Keys) -> tuple[Store, RollupStore]:
    """What a history manager works on."""
    return Store(r, keys), RollupStore(r, keys)


def watcher_config(**changes: object) -> WatcherConfig:
    return replace(WatcherConfig(), **changes)


ROLLUPS = ((10.0, 86400.0), (30.0, 86400.0), (60.0, 86400.0))



# Every test here runs on the standalone server and on the cluster (see conftest `r`).
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def ticks() -> list[Tick]:
    return binance_bids()


def test_rollups_equal_ohlc_computed_by_hand(r, keys, store: Store, ticks):
    store.write(ticks)
    manager = HistoryManager(*stores(r, keys), watcher_config(rollups=ROLLUPS), page=97)
    manager.rollup_pass(ticks[-1].ms + 1)
    for interval in (10, 30, 60):
        expected = hand_ohlc(ticks, interval)
        for symbol, candles in expected.items():
            assert stored_ohlc(r, keys, symbol, interval) == candles, (symbol, interval)


def test_incremental_passes_equal_one_full_pass(r, keys, store: Store, ticks):
    manager = HistoryManager(*stores(r, keys), watcher_config(rollups=ROLLUPS, late_grace=0.0))
    for start in range(0, len(ticks), 700):
        batch = ticks[start:start + 700]
        store.write(batch)
        manager.rollup_pass(max(t.ms for t in batch) + 1)
    for interval in (10, 60):
        for symbol, candles in hand_ohlc(ticks, interval).items():
            assert stored_ohlc(r, keys, symbol, interval) == candles


def test_watermark_is_the_start_of_the_open_bucket(r, keys, store: Store, ticks):
    store.write(ticks)
    HistoryManager(*stores(r, keys), watcher_config(rollups=ROLLUPS)).rollup_pass(1_617_647_700_500)
    assert RollupStore(r, keys).watermark("binance", "ZIL-USDT", "bid", 60) == 1_617_647_700_000


def test_late_tick_within_grace_updates_its_bucket(r, keys, store: Store):
    manager = HistoryManager(*stores(r, keys), watcher_config(rollups=((60.0, 86400.0),),
                                                     late_grace=120.0))
    base = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    store.write([Tick("kraken", "BTC-USD", base + 1000, price="10"),
                 Tick("kraken", "BTC-USD", base + 61_000, price="11")])
    manager.rollup_pass(base + 62_000)
    store.write([Tick("kraken", "BTC-USD", base + 30_000, price="9.5")])  # 32 s late
    manager.rollup_pass(base + 63_000)
    candles = RollupStore(r, keys).candles("kraken", "BTC-USD", "price", 60)
    assert [c.member() for c in candles] == [f"{base}:10:10:9.5:9.5:2",
                                             f"{base + 60_000}:11:11:11:11:1"]


def test_tick_later_than_grace_stays_raw_only(r, keys, store: Store):
    manager = HistoryManager(*stores(r, keys), watcher_config(rollups=((60.0, 86400.0),),
                                                     late_grace=0.0))
    base = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    store.write([Tick("kraken", "BTC-USD", base + 1000, price="10")])
    manager.rollup_pass(base + 300_000)
    store.write([Tick("kraken", "BTC-USD", base + 2000, price="1")])
    manager.rollup_pass(base + 301_000)
    candles = RollupStore(r, keys).candles("kraken", "BTC-USD", "price", 60)
    assert [c.member() for c in candles] == [f"{base}:10:10:10:10:1"]


def test_a_bucket_larger_than_a_page_is_read_whole(r, keys, store: Store):
    base = 1_700_000_040_000
    store.write([Tick("kraken", "ETH-USD", base + i, price=str(100 + i % 7)) for i in range(50)])
    HistoryManager(*stores(r, keys), watcher_config(rollups=((60.0, 86400.0),)),
                   page=8).rollup_pass(base + 120_000)
    [candle] = RollupStore(r, keys).candles("kraken", "ETH-USD", "price", 60)
    assert (candle.open, candle.high, candle.low, candle.close, candle.count) == (
        "100", "106", "100", "100", 50)


def test_roll_ups_survive_the_trimming_of_their_source(r, keys, store: Store):
    manager = HistoryManager(*stores(r, keys), watcher_config(raw_retention=60.0, late_grace=120.0,
                                                     rollups=((10.0, 3600.0),)))
    base = 1_700_000_000_000
    ticks = [Tick("kraken", "BTC-USD", base + i * 1000, price=str(100 + i % 13))
             for i in range(300)]
    for start in range(0, 300, 5):
        store.write(ticks[start:start + 5])
        now = ticks[start + 4].ms + 1
        manager.rollup_pass(now)
        manager.trim_pass(now)
    candles = RollupStore(r, keys).candles("kraken", "BTC-USD", "price", 10)
    assert len(candles) == 30
    assert all(candle.count == 10 for candle in candles)


# ---------------------------------------------------------------------- retention and archive

NOW = 1_617_647_700_000
RETENTION = dict(raw_retention=60.0, rollups=((10.0, 30.0), (60.0, 120.0)))


def test_trimming_leaves_exactly_what_retention_says(r, keys, store: Store, ticks):
    store.write(ticks)
    manager = HistoryManager(*stores(r, keys), watcher_config(**RETENTION))
    manager.rollup_pass(NOW)
    manager.trim_pass(NOW)
    for symbol in {t.symbol for t in ticks}:
        kept = sorted({(t.ms, t.bid) for t in ticks if t.symbol == symbol
                       and t.ms >= NOW - 60_000})
        assert store.range("binance", symbol, "bid") == kept
        for interval, retention_ms in ((10, 30_000), (60, 120_000)):
            expected = [c for c in hand_ohlc(ticks, interval)[symbol]
                        if c[0] >= NOW - retention_ms]
            assert stored_ohlc(r, keys, symbol, interval) == expected


def archived_rows(root: Path) -> list[tuple[str, str, str, int, str, str]]:
    return dataset_rows(root)


def trimmed_by_hand(ticks: list[Tick]) -> list[tuple[str, str, str, int, str, str]]:
    rows = set()
    for t in ticks:
        if t.ms < NOW - 60_000:
            for field, value in t.values():
                rows.add(("binance", t.symbol, "2021-04-05", t.ms, field, value))
    return sorted(rows, key=lambda row: (row[1], row[3], row[4], row[5]))


def test_archive_holds_exactly_the_trimmed_points(r, keys, store: Store, ticks, tmp_path):
    store.write(ticks)
    manager = HistoryManager(*stores(r, keys), watcher_config(**RETENTION),
                             archive=Archive(tmp_path),
                             page=300)
    manager.trim_pass(NOW)
    rows = archived_rows(tmp_path)
    assert sorted(rows, key=lambda row: (row[1], row[3], row[4], row[5])) == trimmed_by_hand(ticks)
    assert ("binance", "ZIL-USDT", "2021-04-05", 1617647603424, "bid",
            "0.21437000") in rows


class CrashAfterArchive(Archive):
    """Archives, then dies before the trim: the worst moment for a crash."""

    def write(self, exchange, symbol, field, points):  # noqa: ANN001, ANN201 - test double
        super().write(exchange, symbol, field, points)
        raise RuntimeError("crash between archive and trim")


def test_crash_between_archive_and_trim_loses_and_duplicates_nothing(r, keys, store: Store,
                                                                     ticks, tmp_path):
    store.write(ticks)
    config = watcher_config(**RETENTION)
    report = HistoryManager(*stores(r, keys), config, archive=CrashAfterArchive(tmp_path), page=300
                            ).trim_pass(NOW)
    assert len(report.failures) == report.series == len(store.series())
    assert archived_rows(tmp_path), "the crash came after some archiving"
    HistoryManager(*stores(r, keys), config, archive=Archive(tmp_path), page=300).trim_pass(NOW)
    rows = archived_rows(tmp_path)
    assert len(rows) == len(set(rows))
    assert sorted(rows, key=lambda row: (row[1], row[3], row[4], row[5])) == trimmed_by_hand(ticks)
    for symbol in {t.symbol for t in ticks}:
        assert store.count("binance", symbol, "bid", end_ms=NOW - 60_001) == 0


class Killed(BaseException):
    """The process dying: nothing in the pass handles it."""


class StopAfterPages(HistoryManager):
    """Dies after ``pages`` source reads, as a watcher killed mid-way through a long pass."""

    def __init__(self, *args, pages: int, **kwargs):  # noqa: ANN002, ANN003 - test double
        super().__init__(*args, **kwargs)
        self.pages_left = pages

    def _read(self, *args):  # noqa: ANN002, ANN202 - test double
        if self.pages_left == 0:
            raise Killed("killed mid-pass")
        self.pages_left -= 1
        return super()._read(*args)


def test_an_interrupted_first_pass_resumes_where_it_stopped(r, keys, store: Store, ticks):
    store.write(ticks)
    config = watcher_config(rollups=((10.0, 86400.0),), late_grace=0.0)
    exchange, symbol = store.series()[0]  # the first series a pass reads; it has no prices
    assert store.count(exchange, symbol, "bid") > 3 * 50
    with pytest.raises(Killed):
        StopAfterPages(*stores(r, keys), config, page=50, pages=3).rollup_pass(ticks[-1].ms + 1)
    mark = RollupStore(r, keys).watermark(exchange, symbol, "bid", 10)
    assert mark is not None and mark > min(t.ms for t in ticks if t.symbol == symbol)
    HistoryManager(*stores(r, keys), config, page=50).rollup_pass(ticks[-1].ms + 1)
    for symbol, candles in hand_ohlc(ticks, 10).items():
        assert stored_ohlc(r, keys, symbol, 10) == candles, symbol


def test_passes_report_progress_after_every_page(r, keys, store: Store, ticks, tmp_path):
    store.write(ticks)
    calls = []
    manager = HistoryManager(*stores(r, keys), watcher_config(**RETENTION),
                             archive=Archive(tmp_path),
                             page=100, progress=lambda: calls.append(1))
    manager.rollup_pass(NOW)
    after_rollups = len(calls)
    removed = manager.trim_pass(NOW).count
    assert after_rollups >= len(ticks) // 100
    assert len(calls) - after_rollups >= removed // 100 + len(store.series())


def test_archive_makes_the_partition_rename_durable(tmp_path, monkeypatch):
    synced: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    Archive(tmp_path).write("kraken", "BTC-USD", "price", [(NOW, "1.50")])
    # The file's data, then its directory entry and each directory the write created.
    assert synced[:2] == [False, True] and all(synced[1:])
    synced.clear()
    Archive(tmp_path).write("kraken", "BTC-USD", "price", [(NOW + 1, "1.60")])
    assert synced == [False, True]
