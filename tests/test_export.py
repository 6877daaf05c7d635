"""`bcx export`: raw ticks and candles as CSV, paged, in time order, values verbatim."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from bcx.cli import main
from bcx.export import ExportError, export, points
from bcx.keys import Keys
from bcx.rollups import Candle
from bcx.store import RollupStore, Store
from bcx.ticks import Tick

T0 = 1_700_000_000_000


def stores(r: redis.Redis, keys: Keys) -> tuple[Store, RollupStore]:
    return Store(r, keys), RollupStore(r, keys)


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def config_file(tmp_path: Path, redis_url: str) -> str:
    path = tmp_path / "bcx.conf"
    path.write_text(f"[redis]\nurl = {redis_url}\n")
    return str(path)


def test_raw_rows_merge_fields_in_time_order_with_values_verbatim(r, keys, store):
    store.write([Tick("kraken", "BTC-USD", T0, price="58721.20000", bid="58721.1"),
                 Tick("kraken", "BTC-USD", T0 + 5, ask="58722.00000"),
                 Tick("kraken", "BTC-USD", T0 + 9, price="58721.20000")])
    out = io.StringIO()
    assert export(*stores(r, keys), out, "kraken", "BTC-USD", ("price", "bid", "ask")) == 4
    assert rows_of(out.getvalue()) == [
        ["time_ms", "time", "field", "value"],
        [str(T0), "2023-11-14T22:13:20.000+00:00", "bid", "58721.1"],
        [str(T0), "2023-11-14T22:13:20.000+00:00", "price", "58721.20000"],
        [str(T0 + 5), "2023-11-14T22:13:20.005+00:00", "ask", "58722.00000"],
        [str(T0 + 9), "2023-11-14T22:13:20.009+00:00", "price", "58721.20000"]]


def test_paging_neither_skips_nor_repeats_points_sharing_a_millisecond(store):
    # Three points per millisecond, pages of four: every page boundary splits a millisecond.
    ticks = [Tick("coinbase", "BTC-USD", T0 + i // 3, price=f"{i}.0") for i in range(30)]
    store.write(ticks)
    got = list(points(store, "coinbase", "BTC-USD", "price", None, None, page=4))
    assert sorted(got) == sorted((t.ms, t.price) for t in ticks)
    assert len(got) == 30


def test_a_page_of_one_millisecond_still_moves_on(store):
    store.write([Tick("coinbase", "BTC-USD", T0, price=f"{i}") for i in range(5)]
                + [Tick("coinbase", "BTC-USD", T0 + 1, price="x")])
    got = list(points(store, "coinbase", "BTC-USD", "price", None, None, page=3))
    assert len(got) == 6 and got[-1] == (T0 + 1, "x")


def test_time_range_and_field_filter(r, keys, store):
    store.write([Tick("coinbase", "BTC-USD", T0 + i * 1000, price=str(i), bid=str(i))
                 for i in range(10)])
    out = io.StringIO()
    export(*stores(r, keys), out, "coinbase", "BTC-USD", ("bid",), T0 + 2000, T0 + 4000)
    assert [row[2:] for row in rows_of(out.getvalue())[1:]] == [["bid", "2"], ["bid", "3"],
                                                                ["bid", "4"]]


def test_candles_come_from_the_roll_up(r, keys, store):
    store.write([Tick("coinbase", "BTC-USD", T0, price="1")])
    r.zadd(keys.rollup("coinbase", "BTC-USD", "price", 60),
           {Candle(T0, "1.0", "3.5", "0.5", "2.0", 7).member(): T0 / 1000})
    out = io.StringIO()
    assert export(*stores(r, keys), out, "coinbase", "BTC-USD", ("price",), interval_s=60) == 1
    assert rows_of(out.getvalue())[1] == [str(T0), "2023-11-14T22:13:20.000+00:00", "1.0",
                                          "3.5", "0.5", "2.0", "7"]


def test_unknown_series_is_refused(r, keys):
    with pytest.raises(ExportError, match="unknown series coinbase:NOPE-USD"):
        export(*stores(r, keys), io.StringIO(), "coinbase", "NOPE-USD", ("price",))


def test_command_writes_a_file(r, keys, store, config_file, tmp_path):
    store.write([Tick("coinbase", "ETH-USD", T0, price="3120.01")])
    target = tmp_path / "eth.csv"
    result = CliRunner().invoke(main, ["export", "coinbase:ETH-USD", "--config", config_file,
                                       "-o", str(target), "--start", "2023-11-14T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert rows_of(target.read_text())[1][2:] == ["price", "3120.01"]


@pytest.mark.parametrize(("args", "message"), [
    (["coinbase-BTC-USD"], "expected EXCHANGE:SYMBOL"),
    (["coinbase:BTC-USD", "--start", "yesterday"], "expected epoch seconds"),
    (["coinbase:BTC-USD", "--interval", "5m"], "not a configured roll-up interval"),
    (["coinbase:NOPE-USD"], "unknown series"),
])
def test_command_names_what_is_wrong(r, config_file, args, message):
    result = CliRunner().invoke(main, ["export", *args, "--config", config_file])
    assert result.exit_code != 0
    assert message in result.output
