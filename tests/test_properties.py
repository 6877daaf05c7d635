"""Rules that hold for any input (Hypothesis) and the boundary values beside them: candles
merged from finer roll-ups equal candles folded straight from the raw ticks or trades, member
encodings read back exactly, and values exactly on a rule's threshold."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bcx.exchanges.common import DECIMAL
from bcx.rollups import (
    Candle,
    Volume,
    candles_from_candles,
    candles_from_points,
    candles_from_trades,
)
from bcx.ticks import TradeFields, member, parse_member
from tests.test_rules import SERIES, T0, F, Harness, R, rule_config

HOUR_MS = 3_600_000
# Prices of mixed digit counts on purpose ("9.5" < "10" as numbers, not as text), in the
# forms the gate accepts (exponents, a bare leading or trailing point).
PRICES = st.sampled_from(["9.5", "10", "100", "99.99", "1E+2", "0.5", ".5", "5.", "9", "10.0",
                          "1000", "2e-1"]) | st.builds(
    lambda digits, places: str(Decimal(digits).scaleb(-places)), st.integers(0, 10**7),
    st.integers(0, 8))
# Instants that favour the first and last millisecond of minutes and hours.
OFFSETS = st.sampled_from([0, 1, 59_999, 60_000, 119_999, HOUR_MS - 1, HOUR_MS,
                           2 * HOUR_MS - 1]) | st.integers(0, 3 * HOUR_MS)


def _sorted(items: list) -> list:
    return sorted(items, key=lambda item: item[0])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(OFFSETS, PRICES), max_size=40).map(_sorted))
def test_an_hour_merged_from_minutes_equals_the_hour_from_raw_ticks(points: list) -> None:
    points = [(T0 - T0 % HOUR_MS + ms, value) for ms, value in points]
    minutes = candles_from_points(points, 60)
    assert candles_from_candles(minutes, 3600) == candles_from_points(points, 3600)
    for candle in candles_from_points(points, 3600):
        values = [Decimal(v) for ms, v in points if candle.start_ms <= ms < candle.start_ms
                  + HOUR_MS]
        assert (Decimal(candle.low), Decimal(candle.high)) == (min(values), max(values))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(OFFSETS, PRICES, PRICES, st.booleans()), max_size=40).map(_sorted))
def test_an_hour_merged_from_minutes_equals_the_hour_from_raw_trades(rows: list) -> None:
    trades = [TradeFields(T0 - T0 % HOUR_MS + ms, price, size, "buy" if buy else "sell",
                          str(i)) for i, (ms, price, size, buy) in enumerate(rows)]
    minutes = candles_from_trades(trades, 60)
    assert candles_from_candles(minutes, 3600) == candles_from_trades(trades, 3600)


def test_mixed_digit_counts_merge_by_value_not_by_text() -> None:
    minutes = [Candle(0, "10", "10", "10", "10", 1), Candle(60_000, "9.5", "9.5", "9.5", "9.5", 1),
               Candle(120_000, "100", "100", "100", "100", 1)]
    hour = candles_from_candles(minutes, 3600)
    assert hour == [Candle(0, "10", "100", "9.5", "100", 3)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(OFFSETS, PRICES, PRICES, st.booleans()), max_size=30).map(_sorted))
def test_volume_totals_from_minute_buckets_equal_those_from_trades(rows: list) -> None:
    trades = [TradeFields(ms, price, size, "buy" if buy else "sell", str(i))
              for i, (ms, price, size, buy) in enumerate(rows)]
    raw, merged = Volume(), Volume()
    for trade in trades:
        raw.add_trade(trade)
    for candle in candles_from_trades(trades, 60):
        merged.add_candle(candle)
    merged.add_candle(Candle(0, "1", "1", "1", "1", 0))  # a price bucket: no volume at all
    assert merged == raw


def test_bucket_edges_empty_and_single_tick_buckets() -> None:
    assert candles_from_points([], 60) == [] and candles_from_candles([], 3600) == []
    points = [(0, "10"), (59_999, "9.5"), (60_000, "11")]
    assert candles_from_points(points, 60) == [Candle(0, "10", "10", "9.5", "9.5", 2),
                                               Candle(60_000, "11", "11", "11", "11", 1)]
    assert candles_from_points(points, 3600) == [Candle(0, "10", "11", "9.5", "11", 3)]


@given(st.integers(-2**63, 2**63), st.from_regex(DECIMAL, fullmatch=True))
def test_point_members_round_trip_any_decimal_text_the_gate_accepts(ms: int, value: str) -> None:
    assert parse_member(member(ms, value)) == (ms, value)


@given(st.builds(Candle, st.integers(0, 2**53), *[st.from_regex(DECIMAL, fullmatch=True)] * 4,
                 st.integers(0, 2**31)))
def test_candle_members_round_trip(candle: Candle) -> None:
    assert Candle.from_member(candle.member()) == candle


# --------------------------------------------------------------------------- on the threshold

def test_cross_up_arms_on_a_value_exactly_at_the_threshold(r, keys, tmp_path: Path) -> None:
    harness = Harness(r, keys, rule_config(tmp_path, kind="cross_up", threshold=100))
    harness.tick(1, price="100")  # at the level: the near side, arms the rule
    harness.tick(2, price="100.01")
    assert harness.events() == [(F, SERIES, 2.0)]


def test_cross_down_arms_on_a_value_exactly_at_the_threshold(r, keys, tmp_path: Path) -> None:
    harness = Harness(r, keys, rule_config(tmp_path, kind="cross_down", threshold=100))
    harness.tick(1, price="100.0")
    harness.tick(2, price="99.99")
    assert harness.events() == [(F, SERIES, 2.0)]


def test_above_and_below_do_not_hold_exactly_at_the_threshold(r, keys, tmp_path: Path) -> None:
    for kind, past in (("above", "100.000001"), ("below", "99.999999")):
        harness = Harness(r, keys, rule_config(tmp_path, kind=kind, threshold=100))
        harness.tick(1, price="100")
        assert harness.events() == [], kind
        harness.tick(2, price=past)
        assert harness.events() == [(F, SERIES, 2.0)], kind
        harness.tick(3, price="1E+2")
        assert harness.events() == [(F, SERIES, 2.0), (R, SERIES, 3.0)], kind
        r.flushdb()


def test_a_crossing_in_one_batch_from_exactly_the_level(r, keys, tmp_path: Path) -> None:
    harness = Harness(r, keys, rule_config(tmp_path, kind="cross_up", threshold=9.5))
    ms = T0 + 1000
    batch = [{"series": SERIES, "time": ms, "price": p} for p in ("9.5", "10")]
    harness.engine.on_ticks(json.dumps(batch), ms)
    assert harness.events() == [(F, SERIES, 1.0)]
