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
H0 = 1_699_999_200_000  # T0 down to the hour: candle buckets start there


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


def test_candles_come_from_the_roll_up_then_raw_ticks_after_its_watermark(r, keys, store):
    # The tick at H0 is inside the roll-up's complete part: the candle, not the tick, counts.
    store.write([Tick("coinbase", "BTC-USD", H0, price="1"),
                 Tick("coinbase", "BTC-USD", H0 + 60_000, price="9"),
                 Tick("coinbase", "BTC-USD", H0 + 61_000, price="8")])
    RollupStore(r, keys).replace_page("coinbase", "BTC-USD", "price", 60, H0, None,
                                      [Candle(H0, "1.0", "3.5", "0.5", "2.0", 7)], H0 + 60_000)
    out = io.StringIO()
    assert export(*stores(r, keys), out, "coinbase", "BTC-USD", ("price",), H0, H0 + 119_999,
                  interval_s=60, rollup_intervals=(60,)) == 2
    assert rows_of(out.getvalue()) == [
        ["time_ms", "time", "field", "open", "high", "low", "close"],
        [str(H0), "2023-11-14T22:00:00.000+00:00", "price", "1.0", "3.5", "0.5", "2.0"],
        [str(H0 + 60_000), "2023-11-14T22:01:00.000+00:00", "price", "9.0", "9.0", "8.0",
         "8.0"]]


def test_candles_of_an_interval_no_roll_up_divides_are_built_from_raw_ticks(r, keys, store):
    # 10 s candles (finer than every roll-up), all three fields: one row per bucket and field.
    store.write([Tick("kraken", "BTC-USD", H0 + i * 4000, price=str(100 + i), bid=str(99 + i),
                      ask=str(101 + i)) for i in range(5)])
    out = io.StringIO()
    assert export(*stores(r, keys), out, "kraken", "BTC-USD", ("price", "bid", "ask"),
                  H0, H0 + 19_999, interval_s=10, rollup_intervals=(60, 3600)) == 6
    got = [(row[0], row[2], row[3:]) for row in rows_of(out.getvalue())[1:]]
    assert got == [
        (str(H0), "ask", ["101.0", "103.0", "101.0", "103.0"]),
        (str(H0), "bid", ["99.0", "101.0", "99.0", "101.0"]),
        (str(H0), "price", ["100.0", "102.0", "100.0", "102.0"]),
        (str(H0 + 10_000), "ask", ["104.0", "105.0", "104.0", "105.0"]),
        (str(H0 + 10_000), "bid", ["102.0", "103.0", "102.0", "103.0"]),
        (str(H0 + 10_000), "price", ["103.0", "104.0", "103.0", "104.0"])]


def test_candles_without_start_begin_at_the_oldest_roll_up_candle(r, keys, store):
    # Raw ticks are trimmed long before the roll-ups: the export still starts at the roll-up.
    store.write([Tick("coinbase", "BTC-USD", H0 + 3_600_000, price="5")])
    RollupStore(r, keys).replace_page("coinbase", "BTC-USD", "price", 60, H0, None,
                                      [Candle(H0, "1", "1", "1", "1", 1)], H0 + 60_000)
    out = io.StringIO()
    export(*stores(r, keys), out, "coinbase", "BTC-USD", ("price",), None, H0 + 3_600_000,
           interval_s=60, rollup_intervals=(60,))
    assert [row[0] for row in rows_of(out.getvalue())[1:]] == [str(H0), str(H0 + 3_600_000)]


def test_long_candle_exports_go_window_by_window_and_halve_a_window_of_too_many_ticks(
        r, keys, store, monkeypatch):
    import bcx.aggregate
    import bcx.export

    store.write([Tick("coinbase", "BTC-USD", H0 + i * 1000, price=str(i)) for i in range(40)])
    monkeypatch.setattr(bcx.export, "WINDOW_CANDLES", 3)
    monkeypatch.setattr(bcx.aggregate, "RAW_CANDLE_MAX", 10)  # a 10 s bucket holds exactly 10
    reports = []
    out = io.StringIO()
    assert export(*stores(r, keys), out, "coinbase", "BTC-USD", ("price",), H0, H0 + 39_999,
                  interval_s=10, progress=lambda done, total: reports.append((done, total))) == 4
    assert [row[3:] for row in rows_of(out.getvalue())[1:]] == [
        ["0.0", "9.0", "0.0", "9.0"], ["10.0", "19.0", "10.0", "19.0"],
        ["20.0", "29.0", "20.0", "29.0"], ["30.0", "39.0", "30.0", "39.0"]]
    assert reports == [(30_000, 40_000), (40_000, 40_000)]
    monkeypatch.setattr(bcx.aggregate, "RAW_CANDLE_MAX", 9)  # one bucket is already too many
    with pytest.raises(ExportError, match="--interval: this range would be built from too many"):
        export(*stores(r, keys), io.StringIO(), "coinbase", "BTC-USD", ("price",), H0,
               H0 + 39_999, interval_s=10)


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
    (["coinbase:BTC-USD", "--interval", "1500ms"], "expected a whole number of seconds"),
    (["coinbase:BTC-USD", "--interval", "366d"], "expected a whole number of seconds"),
    (["coinbase:NOPE-USD"], "unknown series"),
])
def test_command_names_what_is_wrong(r, config_file, args, message):
    result = CliRunner().invoke(main, ["export", *args, "--config", config_file])
    assert result.exit_code != 0
    assert message in result.output


def test_command_exports_candles_of_every_field_at_any_interval(store, config_file):
    # Was: "one --field at a time" although the default is all fields; 10s was refused.
    store.write([Tick("coinbase", "BTC-USD", H0 + i * 1000, price=str(i), bid=str(i))
                 for i in range(20)])
    for interval, buckets in (("1m", 1), ("10s", 2), ("1s", 20)):
        result = CliRunner().invoke(main, ["export", "coinbase:BTC-USD", "--config", config_file,
                                           "--interval", interval, "--start", str(H0),
                                           "--end", str(H0 + 19_999)])
        assert result.exit_code == 0, result.output
        rows = rows_of(result.stdout)
        assert rows[0][:3] == ["time_ms", "time", "field"]
        assert len(rows) - 1 == buckets * 2  # price and bid; ask has no ticks


def test_an_existing_output_is_refused_without_a_terminal_unless_forced(store, config_file,
                                                                        tmp_path):
    store.write([Tick("coinbase", "ETH-USD", T0, price="3120.01")])
    target = tmp_path / "eth.csv"
    target.write_text("keep me\n")
    args = ["export", "coinbase:ETH-USD", "--config", config_file, "-o", str(target)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"{target} exists: pass --force to overwrite it" in result.output
    assert target.read_text() == "keep me\n"
    result = CliRunner().invoke(main, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert rows_of(target.read_text())[1][2:] == ["price", "3120.01"]


@pytest.mark.parametrize(("answer", "kept"), [("n\n", True), ("y\n", False), ("\n", True)])
def test_an_existing_output_is_asked_about_on_a_terminal(store, config_file, tmp_path,
                                                         monkeypatch, answer, kept):
    import bcx.cli

    monkeypatch.setattr(bcx.cli, "_interactive", lambda: True)
    store.write([Tick("coinbase", "ETH-USD", T0, price="3120.01")])
    target = tmp_path / "eth.csv"
    target.write_text("keep me\n")
    result = CliRunner().invoke(main, ["export", "coinbase:ETH-USD", "--config", config_file,
                                       "-o", str(target)], input=answer)
    assert "exists. Overwrite?" in result.output
    assert (target.read_text() == "keep me\n") is kept
    assert result.exit_code == (1 if kept else 0)


def test_a_failed_export_leaves_the_file_it_was_to_replace(config_file, tmp_path):
    target = tmp_path / "eth.csv"
    target.write_text("keep me\n")
    result = CliRunner().invoke(main, ["export", "coinbase:NOPE-USD", "--config", config_file,
                                       "-o", str(target), "--force"])
    assert result.exit_code == 1 and "unknown series" in result.output
    assert target.read_text() == "keep me\n"
    assert list(tmp_path.glob("*.part")) == []


def test_progress_goes_to_stderr_when_asked(store, config_file, monkeypatch):
    import bcx.export

    monkeypatch.setattr(bcx.export, "PROGRESS_ROWS", 2)
    store.write([Tick("coinbase", "BTC-USD", T0 + i, price=str(i)) for i in range(10)])
    args = ["export", "coinbase:BTC-USD", "--config", config_file, "--end", str(T0 + 9)]
    shown = CliRunner().invoke(main, [*args, "--progress"])
    assert shown.exit_code == 0, shown.output
    assert "exporting" in shown.stderr and "exporting" not in shown.stdout
    assert len(rows_of(shown.stdout)) == 11
    quiet = CliRunner().invoke(main, args)  # stderr is no terminal here
    assert "exporting" not in quiet.stderr
