"""Trades and top-of-book sizes as the adapters read them: every recorded trade once, with its
exchange time, price, size and taker side verbatim; sizes as the venue's text; the trade member
encoding; and the plausibility gate's screening of trades and sizes.

Expected figures come from ``trackerkit.expected_trades``/``expected_sizes``, written from
PROTOCOLS.md without the adapters."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bcx import exchanges
from bcx.exchanges.base import Parsed
from bcx.exchanges.binance import Binance
from bcx.exchanges.bitfinex import Bitfinex
from bcx.exchanges.coinbase import Coinbase
from bcx.exchanges.common import DECIMAL
from bcx.exchanges.gate import (
    FLOOR_MS,
    FUTURE,
    MAX_DECIMAL_CHARS,
    MAX_ID_CHARS,
    PAST,
    UNSUBSCRIBED,
    VALUE,
    Gate,
)
from bcx.exchanges.kraken import Kraken
from bcx.ticks import Tick, Trade, TradeFields, member, parse_trade_member, trade_member
from tests import trackerkit
from tests.test_exchanges import RECORDED_SYMBOLS, SESSIONS, parse_all

SKEW_MS = 5000
NOW = 1_700_000_000_000


def parsed_trades(session: str) -> list[Trade]:
    parsed, _ = parse_all(session)
    return [trade for result in parsed for trade in result.trades]


def as_expected(session: str, trades: list[Trade]) -> dict[tuple[str, str], tuple]:
    native = {normal: name for name, normal in RECORDED_SYMBOLS[SESSIONS[session]].items()}
    return {(native[t.symbol], t.id): (t.ms, t.price, t.size, t.side) for t in trades}


# --------------------------------------------------------------------------- recordings


@pytest.mark.parametrize("session", trackerkit.TRADE_SESSIONS)
def test_every_recorded_trade_is_read_once_with_its_fields_verbatim(session: str) -> None:
    trades = parsed_trades(session)
    expected = trackerkit.expected_trades(session)
    assert expected, "the recording carries trades"
    assert len({(t.symbol, t.id) for t in trades}) == len(trades), "a trade reported twice"
    assert as_expected(session, trades) == expected
    assert {t.exchange for t in trades} == {SESSIONS[session]}


def test_binance_trades_in_one_millisecond_at_one_price_stay_apart() -> None:
    trades = parsed_trades("binance_bookticker")
    points = Counter((t.symbol, member(t.ms, t.price)) for t in trades)
    # The price series' member folds these (8 of 1,240 in the recording); trade members do not.
    assert sum(n - 1 for n in points.values()) == 8
    assert len(trades) == 1240
    assert len({(t.symbol, trade_member(t)) for t in trades}) == 1240


def test_bitfinex_te_and_tu_of_one_trade_give_one_trade() -> None:
    protocol = Bitfinex(["BTC-USD"])
    protocol.parse('{"event":"subscribed","channel":"trades","chanId":5,"symbol":"tBTCUSD",'
                   '"pair":"BTCUSD"}', 0)
    first = protocol.parse('[5,"te",[658733999,1617643726782,-0.5781,4.9e-7],1]', 10)
    assert [(t.id, t.ms, t.price, t.size, t.side) for t in first.trades] == [
        ("658733999", 1617643726782, "4.9e-7", "0.5781", "sell")]
    assert protocol.parse('[5,"tu",[658733999,1617643726782,-0.5781,4.9e-7],2]', 11).trades == []
    # A tu whose te was missed still reports the trade.
    late = protocol.parse('[5,"tu",[658734001,1617643726782,0.1345,230450],3]', 12).trades
    assert [(t.id, t.size, t.side) for t in late] == [("658734001", "0.1345", "buy")]


def test_coinbase_match_side_is_the_makers_so_the_taker_is_the_other() -> None:
    frame = ('{{"type":"match","trade_id":7,"side":"{side}","size":"450","price":"0.791",'
             '"product_id":"SKL-USD","time":"2021-04-17T16:43:37.121358Z"}}')
    protocol = Coinbase(["SKL-USD"])
    assert protocol.parse(frame.format(side="sell"), 0).trades[0].side == "buy"
    assert Coinbase(["SKL-USD"]).parse(frame.format(side="buy"), 0).trades[0].side == "sell"


def test_binance_buyer_maker_means_the_taker_sold() -> None:
    frame = ('{{"stream":"btcusdt@trade","data":{{"e":"trade","E":2,"s":"BTCUSDT","t":9,'
             '"p":"1.5","q":"0.02000000","T":1,"m":{m},"M":true}}}}')
    sold = Binance(["BTC-USDT"]).parse(frame.format(m="true"), 0)
    bought = Binance(["BTC-USDT"]).parse(frame.format(m="false"), 0)
    assert [(t.side, t.size, t.id, t.ms) for t in sold.trades + bought.trades] == [
        ("sell", "0.02000000", "9", 1), ("buy", "0.02000000", "9", 1)]
    # The price series is what it was: one tick per trade frame.
    assert [(t.price, t.ms, t.seq) for t in sold.ticks] == [("1.5", 1, 9)]


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_price_ticks_are_unchanged_by_the_trades(session: str) -> None:
    # The price series keeps coming from where it came: Coinbase and Bitfinex tickers, Binance
    # trade frames, Kraken tickers (and trades on a trade-only connection).
    parsed, _ = parse_all(session)
    prices = [t for result in parsed for t in result.ticks if t.price is not None]
    trades = [t for result in parsed for t in result.trades]
    if session in ("binance_bookticker", "kraken_trade"):
        assert [(t.symbol, t.ms, t.price) for t in prices] == [
            (t.symbol, t.ms, t.price) for t in trades]
    else:
        assert all(not result.trades or not any(t.price for t in result.ticks)
                   for result in parsed)


def test_kraken_price_comes_from_the_ticker_once_it_is_subscribed() -> None:
    trade = '[321,[["58721.20000","0.02798644","1617666461.465618","s","m",""]],"trade","XBT/USD"]'
    protocol = Kraken(["BTC-USD"])
    assert [t.price for t in protocol.parse(trade, 0).ticks] == ["58721.20000"]
    protocol.parse('{"channelID":324,"channelName":"ticker","event":"subscriptionStatus",'
                   '"pair":"XBT/USD","status":"subscribed","subscription":{"name":"ticker"}}', 0)
    parsed = protocol.parse(trade, 0)
    assert parsed.ticks == [] and [t.price for t in parsed.trades] == ["58721.20000"]


def test_kraken_trades_in_one_microsecond_get_distinct_ids() -> None:
    frame = ('[1,[["1.0","2","1617666461.465618","b","m",""],'
             '["1.0","2","1617666461.465618","b","m",""],'
             '["1.1","3","1617666461.465619","s","l",""]],"trade","XBT/USD"]')
    trades = Kraken(["BTC-USD"]).parse(frame, 0).trades
    assert [(t.id, t.side, t.ms) for t in trades] == [
        ("1617666461.465618-0", "buy", 1617666461465), ("1617666461.465618-1", "buy",
                                                        1617666461465),
        ("1617666461.465619-0", "sell", 1617666461465)]


# --------------------------------------------------------------------------- gaps


def test_coinbase_gaps_move_to_matches_and_are_not_counted_twice() -> None:
    protocol = Coinbase(["BTC-USD"])
    ticker = ('{{"type":"ticker","product_id":"BTC-USD","price":"1.0","best_bid":"0.9",'
              '"best_ask":"1.1","time":"2021-04-17T16:43:30.244075Z","trade_id":{t}}}')
    match = ('{{"type":"match","trade_id":{t},"side":"buy","size":"1","price":"1.0",'
             '"product_id":"BTC-USD","time":"2021-04-17T16:43:30.244075Z"}}')
    ack = ('{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["BTC-USD"]},'
           '{"name":"matches","product_ids":["BTC-USD"]}]}')
    assert protocol.parse(ticker.format(t=10), 0).gaps == []
    assert protocol.parse(ack, 0).keepalive
    # The ticker skips 11 and 12 while busy: matches carry them, so no gap.
    assert protocol.parse(ticker.format(t=13), 0).gaps == []
    for trade_id in (11, 12, 13):
        assert protocol.parse(match.format(t=trade_id), 0).gaps == []
    # Matches skipping one is a gap, counted once whichever frame comes next.
    assert protocol.parse(match.format(t=15), 0).gaps == [("BTC-USD", 1)]
    assert protocol.parse(ticker.format(t=15), 0).gaps == []
    # Without an ack, the first match switches the product to matches.
    other = Coinbase(["BTC-USD"])
    other.parse(match.format(t=20), 0)
    assert other.parse(ticker.format(t=25), 0).gaps == []
    assert other.parse(match.format(t=21), 0).gaps == []


@pytest.mark.parametrize("session", ["coinbase_ticker", "binance_bookticker", "kraken_trade"])
def test_recorded_trade_ids_show_no_gaps(session: str) -> None:
    parsed, _ = parse_all(session)
    assert [gap for result in parsed for gap in result.gaps] == []


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("session", ["coinbase_ticker", "binance_bookticker", "bitfinex_ticker",
                                     "kraken_ticker"])
def test_top_of_book_sizes_are_read_verbatim(session: str) -> None:
    parsed, _ = parse_all(session)
    native = {normal: name for name, normal in RECORDED_SYMBOLS[SESSIONS[session]].items()}
    got = [(native[t.symbol], t.bid_size, t.ask_size) for result in parsed
           for t in result.ticks if t.bid is not None]
    assert got == trackerkit.expected_sizes(session)
    for result in parsed:
        for t in result.ticks:
            assert [name for name, _ in t.values()] == [
                name for name in ("price", "bid", "ask") if getattr(t, name) is not None]


def test_coinbase_ticker_sizes_when_the_venue_sends_them() -> None:
    frame = ('{"type":"ticker","product_id":"BTC-USD","price":"17000","best_bid":"16999.99",'
             '"best_bid_size":"0.00200000","best_ask":"17000.00","best_ask_size":"1.2e-3",'
             '"time":"2022-12-01T00:00:00.000000Z","trade_id":1}')
    tick = Coinbase(["BTC-USD"]).parse(frame, 0).ticks[0]
    assert tick.sizes() == [("bid_size", "0.00200000"), ("ask_size", "1.2e-3")]
    assert tick.values() == [("price", "17000"), ("bid", "16999.99"), ("ask", "17000.00")]


# --------------------------------------------------------------------------- subscriptions


def test_every_adapter_subscribes_its_trade_channel() -> None:
    assert "matches" in json.loads(Coinbase(["BTC-USD"]).subscribe_frames()[0])["channels"]
    assert "btcusdt@trade" in Binance(["BTC-USDT"]).connect_url("ws://h")
    assert {"event": "subscribe", "channel": "trades", "symbol": "tBTCUSD"} in [
        json.loads(f) for f in Bitfinex(["BTC-USD"]).subscribe_frames()]
    assert {"name": "trade"} in [json.loads(f)["subscription"]
                                 for f in Kraken(["BTC-USD"]).subscribe_frames()]
    for name in exchanges.NAMES:
        adapter = exchanges.get(name)
        assert not any(adapter.answer(f).refused
                       for f in adapter(["BTC-USD"]).subscribe_frames())


# --------------------------------------------------------------------------- member encoding

decimal_texts = st.from_regex(DECIMAL, fullmatch=True)
TRADE_FIELDS = st.builds(TradeFields, ms=st.integers(min_value=-2**63, max_value=2**63),
                         price=decimal_texts, size=decimal_texts,
                         side=st.sampled_from(["buy", "sell"]), id=st.text(min_size=1))


@given(TRADE_FIELDS)
def test_trade_member_round_trips_any_decimal_text_and_any_id(fields: TradeFields) -> None:
    assert parse_trade_member(trade_member(fields)) == fields


@pytest.mark.parametrize("fields", [
    TradeFields(1617647603562, "0.21437000", "714.00000000", "sell", "18938406"),
    TradeFields(1617643726782, "4.9e-7", "0.5781", "buy", "658733999"),
    TradeFields(1617643726782, "47.914412330000005", "1E+3", "buy", "1"),
    TradeFields(1617666461465, "58721.20000", "0.00000050", "sell", "1617666461.465618-12"),
    TradeFields(0, "1" * MAX_DECIMAL_CHARS, "0", "buy", "x" * MAX_ID_CHARS),
    TradeFields(5, ".5", "5.", "sell", "a:b::c:"),
])
def test_trade_member_edge_cases_round_trip(fields: TradeFields) -> None:
    assert parse_trade_member(trade_member(fields)) == fields


def test_trade_member_tells_trades_apart_by_id_and_repeats_one_trade() -> None:
    one = Trade("binance", "ZIL-USDT", 1, "0.2", "5", "buy", "10")
    assert trade_member(one) == "1:0.2:5:b:10"
    assert trade_member(Trade("binance", "ZIL-USDT", 1, "0.2", "5", "buy", "11")) != \
        trade_member(one)
    assert trade_member(Trade("binance", "ZIL-USDT", 1, "0.2", "5", "buy", "10", 99)) == \
        trade_member(one)


@pytest.mark.parametrize("bad", [
    TradeFields(1, "1:2", "1", "buy", "1"), TradeFields(1, "1", "", "buy", "1"),
    TradeFields(1, "1", "1", "taker", "1"), TradeFields(1, "1", "1", "buy", ""),
])
def test_trade_member_refuses_parts_that_would_not_read_back(bad: TradeFields) -> None:
    with pytest.raises(ValueError):
        trade_member(bad)


@pytest.mark.parametrize("text", ["", "1:2:3:b", "1:2:3:x:9", "x:2:3:b:9", "1::3:b:9"])
def test_parse_trade_member_refuses_what_is_no_trade_member(text: str) -> None:
    with pytest.raises(ValueError):
        parse_trade_member(text)


# --------------------------------------------------------------------------- the gate


def trade(ms: int = FLOOR_MS, symbol: str = "BTC-USD", price: str = "1", size: str = "1",
          side: str = "buy", trade_id: str = "1") -> Trade:
    return Trade("coinbase", symbol, ms, price, size, side, trade_id)  # type: ignore[arg-type]


def screen(*trades: Trade, now: int = NOW) -> tuple[list[Trade], list[str]]:
    admitted, refused = Gate(["BTC-USD"], SKEW_MS).admit_trades(list(trades), now)
    return admitted, [refusal.reason for refusal in refused]


def test_trade_times_follow_the_tick_rules_at_their_limits() -> None:
    assert screen(trade(NOW + SKEW_MS)) == ([trade(NOW + SKEW_MS)], [])
    assert screen(trade(NOW + SKEW_MS + 1)) == ([], [FUTURE])
    assert screen(trade(FLOOR_MS)) == ([trade(FLOOR_MS)], [])
    assert screen(trade(FLOOR_MS - 1)) == ([], [PAST])
    assert screen(trade(symbol="ETH-USD")) == ([], [UNSUBSCRIBED])


@pytest.mark.parametrize("price", ["0", "-1", "1e999", "1e-400", "9" * (MAX_DECIMAL_CHARS + 1)])
def test_a_trade_price_not_finite_and_above_zero_refuses_the_trade(price: str) -> None:
    assert screen(trade(price=price)) == ([], [VALUE])


def test_a_trade_size_may_be_zero_but_not_negative_or_infinite() -> None:
    assert screen(trade(size="0"))[1] == []
    assert screen(trade(size="0.00000001"))[1] == []
    for bad in ("-1", "-0", "1e999", "1" * (MAX_DECIMAL_CHARS + 1)):
        assert screen(trade(size=bad)) == ([], [VALUE])


def test_trade_ids_are_bounded_and_sides_known() -> None:
    assert screen(trade(trade_id="9" * MAX_ID_CHARS))[1] == []
    assert screen(trade(trade_id="9" * (MAX_ID_CHARS + 1))) == ([], [VALUE])
    assert screen(trade(trade_id="")) == ([], [VALUE])
    assert screen(trade(side="maker")) == ([], [VALUE])


def test_one_bad_trade_does_not_refuse_the_others() -> None:
    good, bad = trade(trade_id="1"), trade(trade_id="2", price="0")
    assert screen(good, bad, good) == ([good, good], [VALUE])


def test_tick_sizes_are_screened_and_go_with_their_value() -> None:
    gate = Gate(["BTC-USD"], SKEW_MS)
    kept, refused = gate.admit([Tick("binance", "BTC-USD", FLOOR_MS, bid="1", ask="2",
                                     bid_size="-1", ask_size="0")], NOW)
    assert [(t.bid, t.bid_size, t.ask, t.ask_size) for t in kept] == [("1", None, "2", "0")]
    assert [r.reason for r in refused] == [VALUE]
    # The bid refused: its size goes with it, the ask stays.
    kept, refused = gate.admit([Tick("binance", "BTC-USD", FLOOR_MS, bid="0", ask="2",
                                     bid_size="5", ask_size="6")], NOW)
    assert [(t.bid, t.bid_size, t.ask, t.ask_size) for t in kept] == [(None, None, "2", "6")]
    # Sizes alone keep no tick.
    kept, refused = gate.admit([Tick("binance", "BTC-USD", FLOOR_MS, bid="0", bid_size="5")],
                               NOW)
    assert kept == [] and [r.reason for r in refused] == [VALUE]


def test_parsed_carries_no_trades_by_default() -> None:
    assert Parsed().trades == []
