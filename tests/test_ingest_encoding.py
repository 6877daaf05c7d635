"""The tracker's fast paths say exactly what the plain code they stand in for says: the score
and member text of a tick's values, the adapters' decimal check, the gate's one test for a
plausible tick, frame decoding and command packing."""

from __future__ import annotations

import copy
import json

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import HiredisRespSerializer

from bcx.exchanges.base import MalformedFrame
from bcx.exchanges.common import DECIMAL, decimal_text, loads
from bcx.exchanges.gate import (
    FLOOR_MS,
    SERIES_FIELDS,
    SIZE_OF,
    UNSUBSCRIBED,
    VALUE,
    ZERO_ALLOWED,
    Gate,
    value_problem,
)
from bcx.keys import Keys
from bcx.redisconn import _Packer, connect
from bcx.store import Store
from bcx.ticks import Tick, member, score, stamp

T0 = 1_700_000_000_000


@given(st.integers(-2**63, 2**63), st.from_regex(DECIMAL, fullmatch=True))
def test_a_stamp_is_the_score_and_member_of_its_time(ms: int, value: str) -> None:
    at, prefix = stamp(ms)
    assert float(at) == score(ms)
    assert prefix + value == member(ms, value)


@pytest.mark.parametrize("ms", [0, 1, 999, 1000, 1001, -1, -1000, -1001, FLOOR_MS, T0,
                                T0 + 1, T0 + 999, T0 - 1, 9_999_999_999_999])
def test_stored_scores_are_the_event_times_in_seconds(r: redis.Redis, ms: int) -> None:
    Store(r, Keys()).write([Tick("binance", "BTC-USDT", ms, bid="1.5", ask="2",
                                 bid_size="0", ask_size="3.25")])
    for field, value in (("bid", "1.5"), ("ask", "2"), ("bid_size", "0"), ("ask_size", "3.25")):
        assert r.zrange(f"bcx:{{binance:BTC-USDT}}:{field}", 0, -1, withscores=True) == [
            (member(ms, value), score(ms))]


@given(st.text(alphabet="0123456789.-+eE _\t١²", max_size=12))
def test_decimal_text_accepts_exactly_the_decimal_syntax(text: str) -> None:
    try:
        decimal_text(text, "p")
    except MalformedFrame:
        accepted = False
    else:
        accepted = True
    assert accepted == bool(DECIMAL.fullmatch(text))


def _admitted_by_the_rules(tick: Tick, symbols: frozenset[str]) -> tuple[dict | None, int]:
    """What the gate's documented rules keep of ``tick`` (its values, or None when it is
    refused) and how many values they refuse, value by value, without the gate's fast path."""
    if tick.symbol not in symbols:
        return None, 0
    values = {name: getattr(tick, name) for name in ZERO_ALLOWED}
    refused = 0
    for name, zero_allowed in ZERO_ALLOWED.items():
        if values[name] is not None and value_problem(values[name], zero_allowed) is not None:
            values[name] = None
            refused += 1
    for name, size in SIZE_OF.items():
        if values[name] is None:
            values[size] = None
    kept = any(values[name] is not None for name in SERIES_FIELDS)
    return (values if kept else None), refused


VALUES = st.one_of(st.none(), st.sampled_from(
    ["1", "0", "0.0", "-0", "-5", "2.5", "1e999", "1e-400", "4.9e-7", "NaN", "inf", "1_0", " 1",
     "x", "", "9" * 40, "9" * 41, "0." + "0" * 38 + "1"]))


@given(st.builds(Tick, st.just("binance"), st.sampled_from(["BTC-USDT", "ETH-USDT"]),
                 st.just(T0), price=VALUES, bid=VALUES, ask=VALUES, bid_size=VALUES,
                 ask_size=VALUES))
def test_the_gates_fast_path_keeps_what_its_rules_keep(tick: Tick) -> None:
    symbols = frozenset({"BTC-USDT"})
    expected, refused_values = _admitted_by_the_rules(copy.copy(tick), symbols)
    admitted, refused = Gate(symbols, 5000).admit([tick], T0)
    if expected is None:
        assert admitted == []
    else:
        assert admitted == [tick]
        assert {name: getattr(tick, name) for name in ZERO_ALLOWED} == expected
    assert sum(refusal.reason == VALUE for refusal in refused) == refused_values
    assert sum(refusal.reason == UNSUBSCRIBED for refusal in refused) == (
        tick.symbol not in symbols)


@pytest.mark.parametrize("raw", [
    '{"p": NaN}', '{"p": Infinity}', '["\\ud800"]', '{"a": 1, "a": 2}',
    '{"t": 9223372036854775808}', '{"s": "ZIL\\u0055SDT", "b": "0.1"}', "[" * 2000 + "]" * 2000,
])
def test_frames_decode_as_json_reads_them(raw: str) -> None:
    try:
        expected = json.loads(raw)
    except RecursionError:
        with pytest.raises(MalformedFrame):
            loads(raw)
        return
    assert loads(raw) == expected or expected != expected  # NaN is not equal to itself
    assert json.dumps(loads(raw)) == json.dumps(expected)


@pytest.mark.parametrize("raw", ["", "{", '{"a":}', "nul", '"\\x"'])
def test_broken_frames_are_malformed(raw: str) -> None:
    with pytest.raises(MalformedFrame, match="not JSON"):
        loads(raw)


ARGUMENT = st.one_of(st.text(max_size=8), st.binary(max_size=8), st.integers(),
                     st.floats(allow_nan=False), st.binary(max_size=8).map(memoryview),
                     st.binary(max_size=8).map(bytearray))


@given(st.sampled_from(["ZADD", "SET", "CLIENT SETNAME", b"GET", b"CONFIG GET"]),
       st.lists(ARGUMENT, max_size=6))
def test_commands_are_packed_as_redis_py_packs_them(command: str | bytes, args: list) -> None:
    assert _Packer().pack(command, *args) == HiredisRespSerializer().pack(command, *args)


def test_refused_arguments_are_refused_as_redis_py_refuses_them(redis_url: str) -> None:
    client = connect(redis_url)
    client.set("k", bytearray(b"kept"))
    client.set("m", memoryview(b"viewed"))
    assert (client.get("k"), client.get("m")) == ("kept", "viewed")
    assert client.execute_command("CONFIG GET", "maxmemory-policy") == {
        "maxmemory-policy": "noeviction"}
    for bad in (None, True, [1]):
        with pytest.raises(redis.DataError):
            client.execute_command("SET", "k", bad)


@pytest.mark.usefixtures("backend")
def test_standalone_and_cluster_clients_pack_with_the_fast_packer(r, monkeypatch) -> None:
    packed: list[str] = []
    original = _Packer.pack

    def spy(self: _Packer, *args: object) -> list[bytes]:
        packed.append(str(args[0]))
        return original(self, *args)

    monkeypatch.setattr(_Packer, "pack", spy)
    pipe = r.pipeline(transaction=False)
    pipe.execute_command("ZADD", "bcx:{binance:BTC-USDT}:bid", "1700000000.5", "1700000000500:1")
    pipe.execute()
    r.set("k", "v")
    assert {"ZADD", "SET"} <= set(packed)
    assert r.zrange("bcx:{binance:BTC-USDT}:bid", 0, -1, withscores=True) == [
        ("1700000000500:1", 1700000000.5)]
