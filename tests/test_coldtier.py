"""The cold tier: raw history past raw_retention in the Parquet dataset, read back together
with Redis by /history, /trades, raw-built /ohlc, exact /stats and bcx export, so the same
query answers the same before and after a trim; crash-safety of archive passes and compaction."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bcx import export as exportmod
from bcx.coldtier import dataset as datasetmod
from bcx.coldtier.tiered import TieredTicks, TieredTrades
from bcx.config import Config, WatcherConfig
from bcx.keys import Keys
from bcx.store import RollupStore, Store, TradeStore
from bcx.ticks import Tick, Trade, member, trade_member
from bcx.watcher.archive import Archive
from bcx.watcher.history import RAW_FIELDS, HistoryManager
from tests.api_support import create
from tests.archive_support import dataset_rows, invalid_rows

pytestmark = pytest.mark.usefixtures("backend")

HOUR = 3_600_000
# Four hours of ticks across midnight (UTC), one every 20 s, so the dataset has two days.
T0 = 1_700_006_400_000 // HOUR * HOUR - 2 * HOUR  # 2023-11-14T22:00Z
SPAN = 4 * HOUR
NOW = T0 + SPAN + 60_000
API = "/api/v1.0/series/binance/BTC-USDT"
ROOT = Path(__file__).resolve().parent.parent


def generated() -> tuple[list[Tick], list[Trade]]:
    ticks, trades = [], []
    for i, ms in enumerate(range(T0, T0 + SPAN, 20_000)):
        ticks.append(Tick("binance", "BTC-USDT", ms, price=f"{100 + i % 37}.{i % 10}0",
                          bid=f"{99 + i % 29}.5", ask=f"{101 + i % 31}.25",
                          bid_size=f"{i % 7}.1", ask_size=f"{i % 5}.2"))
        if i % 3 == 0:
            trades.append(Trade("binance", "BTC-USDT", ms + 1, f"{100 + i % 37}.1",
                                f"0.{i % 9 + 1}", "buy" if i % 2 else "sell", f"t{i}"))
    return ticks, trades


def config(cfg: Config, archive_dir: Path) -> Config:
    return dataclasses.replace(cfg, watcher=dataclasses.replace(
        cfg.watcher, raw_retention=3600.0, archive=True, archive_dir=str(archive_dir)))


def answers(client, r: redis.Redis, keys: Keys, settings: Config) -> dict[str, object]:
    """Every reader over the whole range, ``source`` set aside."""
    out: dict[str, object] = {}
    whole = {"start": T0, "end": T0 + SPAN}
    for path, query in (("history", {"field": "bid", "limit": 10000}),
                        ("history", {"field": "price", "limit": 100, "order": "desc"}),
                        ("trades", {"limit": 10000}),
                        ("ohlc", {"interval": "90s"}),  # no roll-up (1m, 1h) divides 90 s
                        ("stats", {})):
        response = client.get(f"{API}/{path}", query_string={**whole, **query})
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        body.pop("source" if path in ("history", "trades") else "raw_source")
        out[f"{path}{sorted(query.items())}"] = body
    root = settings.watcher.archive_dir
    ticks = TieredTicks(Store(r, keys), root)
    for interval, trades in ((None, None), (90, None),
                             (None, TieredTrades(TradeStore(r, keys), root))):
        handle = io.StringIO()
        exportmod.export(ticks, RollupStore(r, keys), handle, "binance", "BTC-USDT",
                         ("price", "bid", "ask"), T0, T0 + SPAN, interval, [60, 3600],
                         trades=trades)
        out[f"export {interval} {trades is not None}"] = handle.getvalue()
    return out


def test_every_reader_answers_the_same_before_and_after_the_trim(r, keys, cfg, tmp_path):
    ticks, trades = generated()
    store = Store(r, keys)
    store.write(ticks, trades)
    settings = config(cfg, tmp_path / "archive")
    client = create(settings).test_client()
    manager = HistoryManager(store, RollupStore(r, keys), settings.watcher,
                             archive=Archive(settings.watcher.archive_dir), page=200)
    manager.rollup_pass(NOW)
    before = answers(client, r, keys, settings)
    hist = before["history[('field', 'bid'), ('limit', 10000)]"]
    assert hist["points"] == [[t.ms, float(t.bid)] for t in ticks]
    stats = before["stats[]"]
    assert stats["count"] == len(ticks) and not stats["approximate"]
    assert stats["trades"] == len(trades)

    report = manager.trim_pass(NOW)
    assert not report.failures and report.count > 0
    assert store.count("binance", "BTC-USDT", "bid") < len(ticks) / 2  # mostly on disk now
    after = answers(client, r, keys, settings)
    assert after == before
    body = client.get(f"{API}/history", query_string={"field": "bid", "start": T0,
                                                      "end": T0 + SPAN}).get_json()
    assert body["source"] == "archive+redis"
    old = client.get(f"{API}/history", query_string={"start": T0, "end": T0 + HOUR}).get_json()
    recent = client.get(f"{API}/history", query_string={"start": NOW - 60_000}).get_json()
    assert (old["source"], recent["source"]) == ("archive", "redis")
    ohlc = client.get(f"{API}/ohlc", query_string={"start": T0, "end": T0 + SPAN,
                                                   "interval": "90s"}).get_json()
    assert ohlc["raw_source"] == "archive+redis"

    # The files read back with pyarrow.dataset to the same rows; a closed day is one file.
    rows = dataset_rows(tmp_path / "archive")
    assert len(rows) == len(set(rows))
    hot = {(field, m) for field in RAW_FIELDS
           for m in r.zrange(keys.raw("binance", "BTC-USDT", field), 0, -1)}
    cold = {(field, member(ms, value)) for _, _, _, ms, field, value in rows}
    assert not hot & cold
    assert hot | cold == expected_members(ticks, trades)
    first_day = tmp_path / "archive" / "exchange=binance" / "symbol=BTC-USDT" / "date=2023-11-14"
    assert sorted(os.listdir(first_day)) == ["day.parquet"]


def expected_members(ticks: list[Tick], trades: list[Trade]) -> set[tuple[str, str]]:
    out = {(field, member(t.ms, value)) for t in ticks for field, value in
           (*t.values(), *t.sizes())}
    return out | {("trades", trade_member(t)) for t in trades}


class Killed(BaseException):
    """The process dying at a durable step: nothing in the pass handles it."""


@pytest.mark.parametrize("crash_at", range(1, 40, 3))
def test_a_pass_killed_at_any_step_leaves_every_value_exactly_once(r, keys, tmp_path,
                                                                   monkeypatch, crash_at):
    """A kill before or after any rename, unlink or ZREM of an archive pass or compaction,
    then a pass run to the end: every value is in Redis or in the dataset exactly once."""
    ticks, trades = generated()
    ticks, trades = ticks[::4], trades[::4]  # small
    store = Store(r, keys)
    store.write(ticks, trades)
    watcher = WatcherConfig(raw_retention=3600.0)
    steps = {"n": 0}

    def step(real):  # noqa: ANN001, ANN202 - test double
        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            steps["n"] += 1
            if steps["n"] == crash_at:
                raise Killed
            result = real(*args, **kwargs)
            steps["n"] += 1
            if steps["n"] == crash_at:
                raise Killed
            return result
        return run

    with monkeypatch.context() as patch:
        patch.setattr(datasetmod.os, "replace", step(os.replace))
        patch.setattr(datasetmod.os, "unlink", step(os.unlink))
        patch.setattr(Store, "remove_members", step(Store.remove_members))
        manager = HistoryManager(store, RollupStore(r, keys), watcher,
                                 archive=Archive(tmp_path), page=40)
        with contextlib.suppress(Killed):
            manager.trim_pass(NOW)
    # Meanwhile the readers see every value once.
    ticks_view = TieredTicks(store, tmp_path)
    seen = [(field, member(*point)) for field in RAW_FIELDS if field != "trades"
            for point in ticks_view.range("binance", "BTC-USDT", field)]
    seen += [("trades", trade_member(t))
             for t in TieredTrades(TradeStore(r, keys), tmp_path).range("binance", "BTC-USDT")]
    assert sorted(seen) == sorted(expected_members(ticks, trades))
    for field in ("price", "bid_size"):
        assert ticks_view.count("binance", "BTC-USDT", field, T0, NOW) == len(ticks)
    # The pass run again (its pages cut elsewhere) finishes the work.
    HistoryManager(store, RollupStore(r, keys), watcher, archive=Archive(tmp_path),
                   page=55).trim_pass(NOW)
    rows = dataset_rows(tmp_path)
    assert len(rows) == len(set(rows))
    hot = [(field, m) for field in RAW_FIELDS
           for m in r.zrange(keys.raw("binance", "BTC-USDT", field), 0, -1)]
    cold = [(field, member(ms, value)) for _, _, _, ms, field, value in rows]
    assert not set(hot) & set(cold)
    assert sorted(hot + cold) == sorted(expected_members(ticks, trades))


def test_bcx_archive_convert_turns_the_csv_archive_into_the_dataset_once(tmp_path, r):
    root = tmp_path / "archive"
    hour = root / "binance" / "BTC-USDT" / "2023-11-14" / "22.csv"
    hour.parent.mkdir(parents=True)
    hour.write_text("time_ms,time,field,value\n"
                    "1700000000000,2023-11-14T22:13:20.000Z,price,100.50\n"
                    "1700000000000,2023-11-14T22:13:20.000Z,bid,100.25\n"
                    "1700000001000,2023-11-14T22:13:21.000Z,trades,100.5:0.1:b:7\n")
    (root / "invalid" / "binance").mkdir(parents=True)
    (root / "invalid" / "binance" / "BTC-USDT.csv").write_text("field,member\nprice,garbage\n")
    conf = tmp_path / "bcx.conf"
    conf.write_text(f"[watcher]\narchive_dir = {root}\n")
    for expected in ("converted 2 CSV files, 4 rows", "converted 0 CSV files, 0 rows"):
        done = subprocess.run([sys.executable, "-m", "bcx.cli", "archive", "convert",
                               "--config", str(conf)], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and expected in done.stdout, done.stderr
    assert sorted(dataset_rows(root)) == [
        ("binance", "BTC-USDT", "2023-11-14", 1700000000000, "bid", "100.25"),
        ("binance", "BTC-USDT", "2023-11-14", 1700000000000, "price", "100.50"),
        ("binance", "BTC-USDT", "2023-11-14", 1700000001000, "trades", "100.5:0.1:b:7")]
    assert invalid_rows(root, "binance", "BTC-USDT") == [("price", "garbage")]
    assert not list(root.rglob("*.csv")) and not (root / "binance").exists()


def test_a_point_in_both_tiers_counts_once_and_a_late_one_in_redis_counts(r, keys, tmp_path):
    Archive(tmp_path).write("binance", "BTC-USDT", "price", [(T0, "1"), (T0 + 2000, "3")])
    store = Store(r, keys)
    store.write([Tick("binance", "BTC-USDT", T0 + 1000, price="2"),  # late: not archived yet
                 Tick("binance", "BTC-USDT", T0 + 2000, price="3"),  # archived, not trimmed
                 Tick("binance", "BTC-USDT", T0 + 3000, price="4")])
    reader = TieredTicks(store, tmp_path)
    assert reader.range("binance", "BTC-USDT", "price") == [
        (T0, "1"), (T0 + 1000, "2"), (T0 + 2000, "3"), (T0 + 3000, "4")]
    assert reader.range("binance", "BTC-USDT", "price", limit=2, newest_first=True) == [
        (T0 + 3000, "4"), (T0 + 2000, "3")]
    assert reader.count("binance", "BTC-USDT", "price", T0, T0 + 3000) == 4
    assert reader.count("binance", "BTC-USDT", "price", T0 + 2000, None) == 2
    assert reader.oldest_ms("binance", "BTC-USDT", "price") == T0
