"""Exchange adapters against the recorded sessions: every tick, gap and symbol is checked
against figures computed here straight from the JSON, with code that shares nothing with the
adapters."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bcx import exchanges
from bcx.exchanges.base import ANY_SYMBOL, MalformedFrame, Parsed, Rewrite
from bcx.exchanges.binance import Binance
from bcx.exchanges.bitfinex import Bitfinex
from bcx.exchanges.coinbase import Coinbase
from bcx.exchanges.kraken import Kraken
from tests import support

DATA = Path(__file__).parent / "data"

# Every symbol the recordings carry, written out by hand: venue's name -> normalised.
RECORDED_SYMBOLS = {
    "coinbase": {s: s for s in ("SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC",
                                "YFI-BTC", "DASH-BTC", "NU-GBP", "CRV-EUR", "SKL-GBP")},
    "binance": {"BTCAUD": "BTC-AUD", "MANAUSDT": "MANA-USDT", "ETHBRL": "ETH-BRL",
                "DENTUSDT": "DENT-USDT", "ZILUSDT": "ZIL-USDT", "RENBTCETH": "RENBTC-ETH",
                "BTCSTUSDT": "BTCST-USDT", "QTUMETH": "QTUM-ETH", "AXSBNB": "AXS-BNB",
                "NEOUSDC": "NEO-USDC"},
    "bitfinex": {"tETH2X:ETH": "ETH2X-ETH", "tREQUSD": "REQ-USD", "tGTXUST": "GTX-USDT",
                 "tCHZUST": "CHZ-USDT", "tKNCBTC": "KNC-BTC", "tETHJPY": "ETH-JPY",
                 "tZRXETH": "ZRX-ETH", "tLRCBTC": "LRC-BTC"},
    "kraken": {"ALGO/XBT": "ALGO-BTC", "LSK/USD": "LSK-USD", "USDC/GBP": "USDC-GBP",
               "FIL/XBT": "FIL-BTC", "WAVES/ETH": "WAVES-ETH", "ICX/USD": "ICX-USD",
               "AUD/USD": "AUD-USD", "KAVA/USD": "KAVA-USD", "DASH/EUR": "DASH-EUR",
               "XBT/USD": "BTC-USD"},
}
SESSIONS = {"coinbase_ticker": "coinbase", "binance_bookticker": "binance",
            "bitfinex_ticker": "bitfinex", "kraken_ticker": "kraken", "kraken_trade": "kraken"}


def recv_frames(session: str) -> list[tuple[int, str]]:
    """(recorded receive ms, raw text) of every frame the venue sent."""
    return support.recv_frames(DATA / f"{session}.session.jsonl")


def parse_all(session: str) -> tuple[list[Parsed], list[tuple[int, str]]]:
    exchange = SESSIONS[session]
    protocol = exchanges.get(exchange)(sorted(RECORDED_SYMBOLS[exchange].values()))
    frames = recv_frames(session)
    return [protocol.parse(raw, ms) for ms, raw in frames], frames


def adapter_figures(parsed: list[Parsed]) -> tuple[Counter, dict, list]:
    counts: Counter = Counter()
    last: dict = {}
    points = []
    for result in parsed:
        for tick in result.ticks:
            for name, value in tick.values():
                counts[(tick.symbol, name)] += 1
                last[(tick.symbol, name)] = value
                points.append((tick.symbol, name, tick.ms, value))
    return counts, last, points


# ---- independent readings of each recording ----

def expected_coinbase(frames: list[tuple[int, str]]) -> list[tuple[str, str, int, str]]:
    out = []
    for _, raw in frames:
        msg = json.loads(raw)
        if msg["type"] == "ticker":
            when = datetime.fromisoformat(msg["time"].replace("Z", "+00:00"))
            ms = int(when.timestamp()) * 1000 + when.microsecond // 1000
            for key, name in (("price", "price"), ("best_bid", "bid"), ("best_ask", "ask")):
                out.append((msg["product_id"], name, ms, msg[key]))
    return out


def expected_binance(frames: list[tuple[int, str]]) -> list[tuple[str, str, int, str]]:
    out = []
    for received, raw in frames:
        msg = json.loads(raw)
        data, symbol = msg["data"], RECORDED_SYMBOLS["binance"][msg["data"]["s"]]
        if msg["stream"].endswith("@bookTicker"):
            out += [(symbol, "bid", received, data["b"]), (symbol, "ask", received, data["a"])]
        elif msg["stream"].endswith("@aggTrade"):
            out.append((symbol, "price", data["T"], data["p"]))
    return out


def expected_bitfinex(frames: list[tuple[int, str]]) -> list[tuple[str, str, int, str]]:
    out, tickers = [], {}
    for received, raw in frames:
        if raw.startswith("{"):
            msg = json.loads(raw)
            if msg.get("event") == "subscribed" and msg["channel"] == "ticker":
                tickers[msg["chanId"]] = RECORDED_SYMBOLS["bitfinex"][msg["symbol"]]
            continue
        chan_id = int(raw[1:raw.index(",")])
        if chan_id in tickers and raw[raw.index(",") + 1] == "[":
            # The values exactly as written in the frame, by plain text splitting.
            inner = raw[raw.index("[", 1) + 1: raw.index("]")].split(",")
            out += [(tickers[chan_id], "bid", received, inner[0]),
                    (tickers[chan_id], "ask", received, inner[2]),
                    (tickers[chan_id], "price", received, inner[6])]
    return out


def expected_kraken(frames: list[tuple[int, str]]) -> list[tuple[str, str, int, str]]:
    out = []
    for received, raw in frames:
        msg = json.loads(raw)
        if not isinstance(msg, list):
            continue
        symbol = RECORDED_SYMBOLS["kraken"][msg[-1]]
        if msg[-2] == "ticker":
            data = msg[1]
            out += [(symbol, "price", received, data["c"][0]),
                    (symbol, "bid", received, data["b"][0]),
                    (symbol, "ask", received, data["a"][0])]
        elif msg[-2] == "trade":
            for trade in msg[1]:
                seconds, _, fraction = trade[2].partition(".")
                ms = int(seconds) * 1000 + int((fraction + "000")[:3])
                out.append((symbol, "price", ms, trade[0]))
    return out


EXPECTED = {"coinbase_ticker": expected_coinbase, "binance_bookticker": expected_binance,
            "bitfinex_ticker": expected_bitfinex, "kraken_ticker": expected_kraken,
            "kraken_trade": expected_kraken}


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_ticks_per_series_and_field_match_the_recording(session: str) -> None:
    parsed, frames = parse_all(session)
    expected = EXPECTED[session](frames)
    counts, last, points = adapter_figures(parsed)
    assert expected, "the recording has data"
    assert counts == Counter((symbol, name) for symbol, name, _, _ in expected)
    assert last == {(symbol, name): value for symbol, name, _, value in expected}
    assert sorted(points) == sorted(expected)


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_values_are_the_decimal_strings_the_venue_sent(session: str) -> None:
    parsed, frames = parse_all(session)
    for result, (_, raw) in zip(parsed, frames, strict=True):
        for tick in result.ticks:
            for _, value in tick.values():
                quoted = f'"{value}"' in raw
                bare = f",{value}," in raw or f"[{value}," in raw
                assert quoted or bare, (value, raw)


def test_bitfinex_numbers_keep_their_text() -> None:
    protocol = Bitfinex(["BTC-USD"])
    protocol.parse('{"event":"subscribed","channel":"ticker","chanId":7,"symbol":"tBTCUSD",'
                   '"pair":"BTCUSD"}', 0)
    parsed = protocol.parse("[7,[4.9e-7,1,47.914412330000005,2,0,0,0.0000581,3,4,5],1]", 99)
    tick = parsed.ticks[0]
    assert (tick.bid, tick.ask, tick.price, tick.ms) == ("4.9e-7", "47.914412330000005",
                                                         "0.0000581", 99)


def bitfinex_jumps(frames: list[tuple[int, str]]) -> list[int]:
    """Missed sequence numbers of each jump, from the last number of every channel array."""
    jumps, last = [], None
    for _, raw in frames:
        if raw.startswith("["):
            seq = int(raw[raw.rindex(",") + 1:-1])
            if last is not None and seq > last + 1:
                jumps.append(seq - last - 1)
            last = seq
    return jumps


def test_bitfinex_sequence_gaps_are_counted_faithfully() -> None:
    parsed, frames = parse_all("bitfinex_ticker")
    gaps = [gap for result in parsed for gap in result.gaps]
    assert [missed for _, missed in gaps] == bitfinex_jumps(frames)
    assert len(gaps) > 0
    assert {symbol for symbol, _ in gaps} <= set(RECORDED_SYMBOLS["bitfinex"].values()) | {
        ANY_SYMBOL}


def test_recordings_without_trade_id_jumps_report_no_gaps() -> None:
    for session in ("coinbase_ticker", "binance_bookticker"):
        parsed, _ = parse_all(session)
        assert [gap for result in parsed for gap in result.gaps] == []


def test_coinbase_trade_id_jump_is_a_gap_for_that_product() -> None:
    protocol = Coinbase(["BTC-USD", "ETH-USD"])
    frame = ('{{"type":"ticker","product_id":"{p}","price":"1.0","best_bid":"0.9",'
             '"best_ask":"1.1","time":"2021-04-17T16:43:30.244075Z","trade_id":{t}}}')
    assert protocol.parse(frame.format(p="BTC-USD", t=10), 0).gaps == []
    assert protocol.parse(frame.format(p="ETH-USD", t=50), 0).gaps == []
    assert protocol.parse(frame.format(p="BTC-USD", t=11), 0).gaps == []
    assert protocol.parse(frame.format(p="BTC-USD", t=15), 0).gaps == [("BTC-USD", 3)]


def test_coinbase_heartbeat_last_trade_id_reveals_missed_tickers() -> None:
    protocol = Coinbase(["BTC-USD"])
    ticker = ('{{"type":"ticker","product_id":"BTC-USD","price":"1.0","best_bid":"0.9",'
              '"best_ask":"1.1","time":"2021-04-17T16:43:30.244075Z","trade_id":{t}}}')
    beat = ('{{"type":"heartbeat","sequence":90,"last_trade_id":{t},"product_id":"BTC-USD",'
            '"time":"2021-04-17T16:43:31.000000Z"}}')
    assert protocol.parse(beat.format(t=0), 0).gaps == []  # "unknown", as the venue may send
    assert protocol.parse(ticker.format(t=100), 0).gaps == []
    assert protocol.parse(beat.format(t=100), 0).gaps == []
    assert protocol.parse(beat.format(t=0), 0).gaps == []
    # Trades 101-103 happened: the tickers of 101 and 102 are missed; 103's may still come.
    assert protocol.parse(beat.format(t=103), 0).gaps == [("BTC-USD", 2)]
    assert protocol.parse(beat.format(t=103), 0).gaps == []
    late = protocol.parse(ticker.format(t=103), 0)
    assert late.gaps == [] and late.ticks[0].seq == 103
    assert protocol.parse(beat.format(t=103), 0).keepalive
    # When it never comes, the next ticker counts it.
    other = Coinbase(["BTC-USD"])
    other.parse(ticker.format(t=100), 0)
    assert other.parse(beat.format(t=103), 0).gaps == [("BTC-USD", 2)]
    assert other.parse(ticker.format(t=104), 0).gaps == [("BTC-USD", 1)]


def test_binance_trade_id_jump_is_a_gap_for_that_symbol() -> None:
    protocol = Binance(["BTC-USDT"])
    frame = ('{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
             '"t":{t},"p":"61837.63000000","q":"0.02","T":1723161255342,"m":true,"M":true}}}}')
    first = protocol.parse(frame.format(t=100), 0)
    assert (first.ticks[0].price, first.ticks[0].ms, first.ticks[0].seq) == (
        "61837.63000000", 1723161255342, 100)
    assert protocol.parse(frame.format(t=103), 0).gaps == [("BTC-USDT", 2)]


@pytest.mark.parametrize("exchange", sorted(RECORDED_SYMBOLS))
def test_every_recorded_symbol_maps_both_ways(exchange: str) -> None:
    adapter = exchanges.get(exchange)
    for native, normalised in RECORDED_SYMBOLS[exchange].items():
        assert adapter.from_native(native) == normalised
        assert adapter.to_native(normalised) == native


def test_venue_currency_codes_map_to_common_ones() -> None:
    assert Kraken.to_native("DOGE-USD") == "XDG/USD"
    assert Kraken.from_native("XDG/XBT") == "DOGE-BTC"
    assert Bitfinex.to_native("BTC-USDT") == "tBTCUST"
    assert Binance.from_native("btcusdt") == "BTC-USDT"


@pytest.mark.parametrize("adapter, raw", [
    (Coinbase, "not json"),
    (Coinbase, '{"type":"ticker","price":"1"}'),
    (Coinbase, '{"type":"ticker","product_id":"BTC-USD","price":"abc","time":"x"}'),
    (Binance, '{"stream":"btcusdt@bookTicker","data":{"s":"BTCUSDT","u":1,"b":null,"a":"1"}}'),
    (Binance, '{"stream":"btcusdt@trade","data":"oops"}'),
    (Binance, '{"stream":"btcusdt@bookTicker","data":{"s":"BTCUSDT","u":1,"b":"NaN","a":"1"}}'),
    (Coinbase, '{"type":"ticker","product_id":"BTC-USD","price":"inf"}'),
    (Coinbase, '{"type":"ticker","product_id":"BTC-USD","price":" 1.5"}'),
    (Kraken, '[1,{"a":["1_000"],"b":["1"],"c":["1"]},"ticker","XBT/USD"]'),
    (Bitfinex, "[12345"),
    (Bitfinex, '["x","hb",3]'),
    (Kraken, '[1,{"a":[],"b":["1"],"c":["1"]},"ticker","XBT/USD"]'),
    (Kraken, '[1,[["1.0","2","yesterday","b","m",""]],"trade","XBT/USD"]'),
    (Kraken, '[1,{"a":["1"],"b":["1"],"c":["1"]},"ticker","XBTUSD-long-nonsense"]'),
])
def test_broken_data_frames_raise_malformed_frame(adapter: type, raw: str) -> None:
    with pytest.raises(MalformedFrame):
        adapter(["BTC-USD"]).parse(raw, 0)


@pytest.mark.parametrize("adapter, raw", [
    (Coinbase, '{"type":"status","products":[]}'),
    (Binance, '{"stream":"btcusdt@depth","data":{"e":"depthUpdate"}}'),
    (Bitfinex, '{"event":"somethingNew"}'),
    (Kraken, '[1,{"as":[]},"book-10","XBT/USD"]'),
])
def test_unknown_message_types_are_ignored(adapter: type, raw: str) -> None:
    assert adapter(["BTC-USD"]).parse(raw, 0) == Parsed()


def test_pings_are_answered_and_heartbeats_keep_alive() -> None:
    bitfinex = Bitfinex(["BTC-USD"]).parse('{"event":"ping","cid":1234}', 0)
    assert json.loads(bitfinex.replies[0])["cid"] == 1234
    kraken = Kraken(["BTC-USD"]).parse('{"event":"ping","reqid":42}', 0)
    assert json.loads(kraken.replies[0]) == {"event": "pong", "reqid": 42}
    assert Kraken(["BTC-USD"]).parse('{"event":"heartbeat"}', 0).keepalive
    assert Coinbase(["BTC-USD"]).parse(
        '{"type":"heartbeat","sequence":1,"last_trade_id":2,"product_id":"BTC-USD",'
        '"time":"2014-11-07T08:19:28.464459Z"}', 0).keepalive


def test_subscription_errors_are_reported() -> None:
    assert "not a valid product" in Coinbase(["BTC-USD"]).parse(
        '{"type":"error","message":"Failed to subscribe","reason":"X is not a valid product"}',
        0).error
    assert Bitfinex(["BTC-USD"]).parse('{"event":"error","msg":"symbol: invalid","code":10300}',
                                       0).error
    assert Kraken(["BTC-USD"]).parse(
        '{"errorMessage":"Currency pair not supported","event":"subscriptionStatus",'
        '"pair":"XBT/FOO","status":"error","subscription":{"name":"ticker"}}', 0).error


def test_subscribe_frames_and_urls() -> None:
    assert json.loads(Coinbase(["BTC-USD"]).subscribe_frames()[0]) == {
        "type": "subscribe", "product_ids": ["BTC-USD"],
        "channels": ["ticker", "heartbeat", "matches"]}
    binance = Binance(["BTC-USDT", "ETH-BTC"])
    assert binance.subscribe_frames() == []
    assert binance.connect_url("wss://stream.binance.com:9443/") == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@bookTicker/btcusdt@trade/ethbtc@bookTicker/ethbtc@trade")
    frames = [json.loads(f) for f in Bitfinex(["BTC-USDT"]).subscribe_frames()]
    assert frames == [{"event": "conf", "flags": 65536},
                      {"event": "subscribe", "channel": "ticker", "symbol": "tBTCUST"},
                      {"event": "subscribe", "channel": "trades", "symbol": "tBTCUST"}]
    assert [json.loads(f) for f in Kraken(["BTC-USD"]).subscribe_frames()] == [
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": name}}
        for name in ("ticker", "trade")]


def test_each_adapter_accepts_its_own_subscription() -> None:
    for name in exchanges.NAMES:
        adapter = exchanges.get(name)
        protocol = adapter(["BTC-USD", "ETH-USDT"])
        url = urlsplit(protocol.connect_url("ws://127.0.0.1:1"))
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        verdicts = [adapter.check_connect(path)] + [adapter.answer(f)
                                                    for f in protocol.subscribe_frames()]
        assert any(v.subscribed for v in verdicts) and not any(v.refused for v in verdicts)


@pytest.mark.parametrize("adapter, frame, error_key", [
    (Coinbase, '{"type":"subscribe","product_ids":["GIBBERISH"],"channels":["ticker"]}', "type"),
    (Coinbase, '{"type":"subscribe","channels":["heartbeat"]}', "type"),
    (Binance, '{"method":"SUBSCRIBE","params":["btcusdt@nonsense"],"id":7}', "code"),
    (Bitfinex, '{"event":"subscribe","channel":"ticker","symbol":"BTC"}', "code"),
    (Kraken, '{"event":"subscribe","pair":["XBT"],"subscription":{"name":"ticker"}}',
     "errorMessage"),
])
def test_invalid_subscriptions_get_the_venue_error_frame(adapter: type, frame: str,
                                                         error_key: str) -> None:
    verdict = adapter.answer(frame)
    assert verdict.refused and not verdict.subscribed
    reply = json.loads(verdict.replies[0])
    assert error_key in reply
    if adapter is Bitfinex:
        assert reply["code"] == 10300 and reply["event"] == "error"
    if adapter is Binance:
        assert reply == {"code": 2, "msg": reply["msg"], "id": 7}


def test_strict_venue_refuses_symbols_it_does_not_list() -> None:
    known = frozenset({"BTC-USD"})
    assert Kraken.answer('{"event":"subscribe","pair":["ETH/USD"],"subscription":'
                         '{"name":"ticker"}}', known).refused
    assert Kraken.answer('{"event":"subscribe","pair":["XBT/USD"],"subscription":'
                         '{"name":"ticker"}}', known).subscribed


def test_rewrites_shift_times_and_offset_sequences() -> None:
    change = Rewrite(shift_ms=1500, seq_offset=100)
    shifted = Coinbase.rewrite('{"type":"ticker","time":"2021-04-17T16:43:30.244075Z"}', change)
    assert json.loads(shifted)["time"] == "2021-04-17T16:43:31.744000Z"
    agg = Binance.rewrite('{"data":{"e":"aggTrade","E":1000,"p":"0.1","T":999}}', change)
    assert (json.loads(agg)["data"]["E"], json.loads(agg)["data"]["T"]) == (2500, 2499)
    trade = Kraken.rewrite('[1,[["1.0","2","1617666461.465618","s","m",""]],"trade","XBT/USD"]',
                           change)
    assert Decimal(json.loads(trade)[1][0][2]) == Decimal("1617666462.965618")
    assert Bitfinex.rewrite("[1,[0.1,2,3],41]", change) == "[1,[0.1,2,3],141]"
    assert Bitfinex.frame_seq("[1,\"hb\",41]") == 41


@pytest.mark.parametrize("code", [20051, 20061])
def test_bitfinex_info_asking_for_a_reconnect_is_passed_on(code: int) -> None:
    parsed = Bitfinex(["BTC-USD"]).parse(f'{{"event":"info","code":{code},"msg":"x"}}', 0)
    assert parsed.reconnect and str(code) in parsed.reconnect
    assert Bitfinex(["BTC-USD"]).parse('{"event":"info","code":20060,"msg":"x"}', 0
                                       ).reconnect is None
