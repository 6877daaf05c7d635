"""Implausible input: the plausibility gate (bcx/exchanges/gate.py) refuses event times ahead
of the clock or before 2009, prices that are not finite decimals above 0 and symbols nobody
subscribed, counts each refusal by reason and lets later ticks through; the store never lets a
time in the future pin the latest values.

The tracker tests run real tracker threads against a real redis-server, fed by the replay
server with frames injected into a recording."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bcx.exchanges.base import ANY_SYMBOL
from bcx.exchanges.common import iso_to_ms, ms_to_iso
from bcx.exchanges.gate import (
    FLOOR_MS,
    FUTURE,
    MAX_DECIMAL_CHARS,
    PAST,
    UNSUBSCRIBED,
    VALUE,
    Gate,
    value_problem,
)
from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.store import Store
from bcx.ticks import Tick, parse_member
from bcx.timeutil import now_ms
from bcx.tracker.run import Tracker, tracker_client
from tests import trackerkit
from tests.support import wait_for

keys = Keys("bcx")
PRODUCTS = trackerkit.COINBASE_PRODUCTS
BINANCE_SYMBOLS = ["AXS-BNB", "BTC-AUD", "BTCST-USDT", "DENT-USDT", "ETH-BRL", "MANA-USDT",
                   "NEO-USDC", "QTUM-ETH", "RENBTC-ETH", "ZIL-USDT"]
SKEW_MS = 5000
YEAR_9999_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z
BAD_PRICES = ["-5", "0", "0.000", "-0", "1e999", "1e-400", "9" * 5000]


# --------------------------------------------------------------------------- the gate itself


def tick(ms: int, symbol: str = "BTC-USD", **values: str) -> Tick:
    return Tick("coinbase", symbol, ms, **values)


def admit(*ticks: Tick, now: int = 1_700_000_000_000) -> tuple[list[Tick], list[str]]:
    admitted, refused = Gate(["BTC-USD"], SKEW_MS).admit(list(ticks), now)
    return admitted, [refusal.reason for refusal in refused]


def test_a_time_exactly_max_clock_skew_ahead_is_accepted_and_1ms_more_is_refused() -> None:
    now = 1_700_000_000_000
    assert admit(tick(now + SKEW_MS, price="1"), now=now) == ([tick(now + SKEW_MS, price="1")],
                                                              [])
    assert admit(tick(now + SKEW_MS + 1, price="1"), now=now) == ([], [FUTURE])


def test_a_time_on_the_floor_is_accepted_and_1ms_before_it_is_refused() -> None:
    assert admit(tick(FLOOR_MS, price="1"))[1] == []
    assert admit(tick(FLOOR_MS - 1, price="1")) == ([], [PAST])
    assert admit(tick(-10**15, price="1")) == ([], [PAST])


@pytest.mark.parametrize("bad", BAD_PRICES, ids=lambda text: text[:8])
def test_a_price_that_is_not_finite_and_above_zero_is_refused(bad: str) -> None:
    assert admit(tick(FLOOR_MS, price=bad)) == ([], [VALUE])


@pytest.mark.parametrize("good", ["47.914412330000005", "4.9e-7", "0.00000001", "65000",
                                  "1" + "0" * (MAX_DECIMAL_CHARS - 3) + ".5"])
def test_real_prices_pass_verbatim(good: str) -> None:
    admitted, refused = admit(tick(FLOOR_MS, price=good))
    assert refused == [] and admitted[0].price == good


def test_the_decimal_text_length_limit_is_inclusive() -> None:
    assert value_problem("1" * MAX_DECIMAL_CHARS) is None
    assert value_problem("1" * (MAX_DECIMAL_CHARS + 1)) is not None


def test_one_bad_field_is_dropped_and_the_rest_of_the_tick_kept() -> None:
    admitted, refused = admit(tick(FLOOR_MS, price="10", bid="0", ask="10.5"))
    assert refused == [VALUE]
    assert [(t.price, t.bid, t.ask) for t in admitted] == [("10", None, "10.5")]
    assert admit(tick(FLOOR_MS, bid="0", ask="-1")) == ([], [VALUE, VALUE])


def test_sizes_may_be_zero_but_not_negative_or_infinite() -> None:
    assert value_problem("0", zero_allowed=True) is None
    assert value_problem("0.5", zero_allowed=True) is None
    for bad in ("-1", "-0", "1e999", "9" * 5000):
        assert value_problem(bad, zero_allowed=True) is not None


def test_a_tick_of_a_symbol_not_subscribed_is_refused() -> None:
    assert admit(tick(FLOOR_MS, "ETH-USD", price="1")) == ([], [UNSUBSCRIBED])
    gate = Gate(["BTC-USD"], SKEW_MS)
    assert gate.ours("BTC-USD") and gate.ours(ANY_SYMBOL) and not gate.ours("ETH-USD")


def test_a_future_time_already_written_does_not_freeze_the_latest_values(r: redis.Redis,
                                                                         store: Store) -> None:
    # An older version (or one stray write) stored a year-9999 tick: the store must not take
    # that time for the newest one and ignore every real tick after it.
    now = now_ms()
    store.write([Tick("coinbase", "BTC-USD", YEAR_9999_MS, price="1")])
    store.write([Tick("coinbase", "BTC-USD", now, price="2")])
    latest = store.latest("coinbase", "BTC-USD")
    assert latest is not None
    assert (latest["time"], latest["price"], latest["price_ms"]) == (now, "2", now)


# --------------------------------------------------------------------------- through a tracker


@pytest.fixture
def track(redis_url: str, tmp_path: Path) -> Iterator[Callable[[str, ReplayServer, list[str]],
                                                               Tracker]]:
    """``track(exchange, server, symbols)``: a tracker of one exchange, stopped at teardown."""
    trackers: list[Tracker] = []

    def run(exchange: str, server: ReplayServer, symbols: list[str]) -> Tracker:
        config = trackerkit.tracker_config(tmp_path, redis_url,
                                           {exchange: (server.url, symbols)})
        tracker = Tracker(config, tracker_client(config))
        trackers.append(tracker)
        tracker.start()
        return tracker

    yield run
    for tracker in trackers:
        tracker.stop()


def settle(tracker: Tracker, frames: int, r: redis.Redis, exchange: str) -> dict[str, str]:
    """Wait until ``frames`` frames were read, every admitted tick written and the stats hash
    says so; returns the stats hash."""
    stats = tracker.stats[0]

    def done() -> dict[str, str] | None:
        if stats.frames < frames or tracker.writer.written != stats.ticks:
            return None
        found = r.hgetall(keys.tracker_stats(exchange))
        return found if found.get("rejected") == str(stats.rejected) else None

    return wait_for(done, message=f"{frames} frames read and written")


def coinbase_ticker(product: str, when: str, price: str, **extra: object) -> str:
    return json.dumps({"type": "ticker", "product_id": product, "price": price,
                       "best_bid": price, "best_ask": price, "time": when, **extra})


def last_recorded(product: str, field: str) -> tuple[int, str]:
    """The (time, value) the latest hash should show for a product of the Coinbase recording:
    the newest time, the later frame on a tie."""
    newest = (-1, "")
    for native, name, value, ms in trackerkit.expected_updates("coinbase_ticker"):
        if native == product and name == field and ms is not None and ms >= newest[0]:
            newest = (ms, value)
    return newest


def stored(r: redis.Redis, exchange: str, symbol: str, field: str) -> list[tuple[int, str]]:
    return [parse_member(item) for item in r.zrange(keys.raw(exchange, symbol, field), 0, -1)]


def test_coinbase_ticks_from_the_future_are_refused_and_later_ticks_shown(
        track: Callable[..., Tracker], replay: Callable[..., ReplayServer],
        r: redis.Redis) -> None:
    hour_ahead = ms_to_iso(now_ms() + 3_600_000)
    future = [coinbase_ticker("SKL-USD", hour_ahead, "0.5"),
              coinbase_ticker("SKL-USD", "9999-12-31T23:59:59.000000Z", "0.6")]
    server = replay("coinbase_ticker", inject={3: future})
    tracker = track("coinbase", server, PRODUCTS)
    frames = len(trackerkit.session_frames("coinbase_ticker")) + len(future)
    stats = settle(tracker, frames, r, "coinbase")
    assert (stats["rejected"], stats["rejected_future"]) == ("2", "2")
    latest = r.hgetall(keys.latest("coinbase", "SKL-USD"))
    ms, price = last_recorded("SKL-USD", "price")
    assert (int(latest["time"]), latest["price"]) == (ms, price)
    prices = stored(r, "coinbase", "SKL-USD", "price")
    assert prices and max(prices)[0] == ms and not {"0.5", "0.6"} & {v for _, v in prices}


def test_a_binance_trade_stamped_before_2009_is_refused(
        track: Callable[..., Tracker], replay: Callable[..., ReplayServer],
        r: redis.Redis) -> None:
    trade = json.dumps({"stream": "zilusdt@trade", "data": {
        "e": "trade", "E": 1617647603484, "s": "ZILUSDT", "t": 1, "p": "0.3", "q": "1",
        "T": -10**15}})
    server = replay("binance_bookticker", inject={5: [trade]})
    tracker = track("binance", server, BINANCE_SYMBOLS)
    frames = len(trackerkit.session_frames("binance_bookticker")) + 1
    stats = settle(tracker, frames, r, "binance")
    assert (stats["rejected"], stats["rejected_past"]) == ("1", "1")
    prices = stored(r, "binance", "ZIL-USDT", "price")
    assert prices and min(prices)[0] >= FLOOR_MS and "0.3" not in {v for _, v in prices}


def test_implausible_prices_are_refused_counted_and_logged_with_the_frame(
        track: Callable[..., Tracker], replay: Callable[..., ReplayServer],
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bcx.tracker.feed")
    # Each price is refused wherever it stands: as last price, best bid and best ask.
    bad = [coinbase_ticker("SKL-USD", f"2021-04-17T16:00:00.{i:03d}000Z", price)
           for i, price in enumerate(BAD_PRICES)]
    # One bad field: only it goes, the ask of the same tick is stored.
    half_ms = iso_to_ms("2021-04-17T16:00:01.000000Z")
    half = json.dumps({"type": "ticker", "product_id": "SKL-USD", "best_bid": "0",
                       "best_ask": "0.7777", "time": ms_to_iso(half_ms)})
    server = replay("coinbase_ticker", inject={3: [*bad, half]})
    tracker = track("coinbase", server, PRODUCTS)
    frames = len(trackerkit.session_frames("coinbase_ticker")) + len(bad) + 1
    stats = settle(tracker, frames, r, "coinbase")
    refused = 3 * len(BAD_PRICES) + 1
    assert (stats["rejected"], stats["rejected_value"]) == (str(refused), str(refused))
    for field in ("price", "bid", "ask"):
        values = {value for _, value in stored(r, "coinbase", "SKL-USD", field)}
        assert values and not set(BAD_PRICES) & values, field
    assert (half_ms, "0.7777") in stored(r, "coinbase", "SKL-USD", "ask")
    assert not any(ms == half_ms for ms, _ in stored(r, "coinbase", "SKL-USD", "bid"))
    logged = [record.getMessage() for record in caplog.records
              if "implausible" in record.getMessage()]
    assert len(logged) == len(bad) + 1
    assert "price '-5': negative" in logged[0] and '"product_id": "SKL-USD"' in logged[0]


@pytest.mark.parametrize("exchange", ["coinbase", "binance"])
def test_frames_of_a_symbol_nobody_subscribed_make_no_series(
        exchange: str, track: Callable[..., Tracker], replay: Callable[..., ReplayServer],
        r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bcx.tracker.feed")
    ticks = 12  # more than the 10 logged
    if exchange == "coinbase":
        name, symbols, stranger = "coinbase_ticker", PRODUCTS, "BTC-USD"
        strays = [coinbase_ticker("BTC-USD", f"2021-04-17T16:43:{i:02d}.000000Z", "60000",
                                  trade_id=100 + 2 * i) for i in range(ticks)]
        # A heartbeat reveals missed trade ids: of a product not ours, they are no gaps of ours.
        strays.append(json.dumps({"type": "heartbeat", "product_id": "BTC-USD",
                                  "last_trade_id": 200}))
    else:
        name, symbols, stranger = "binance_bookticker", BINANCE_SYMBOLS, "ETH-USDT"
        strays = [json.dumps({"stream": "ethusdt@trade", "data": {
            "e": "trade", "E": 1617647603484, "s": "ETHUSDT", "t": 100 + 2 * i, "p": "2000",
            "q": "1", "T": 1617647603483}}) for i in range(ticks)]
    server = replay(name, inject={3: strays})
    tracker = track(exchange, server, symbols)
    stats = settle(tracker, len(trackerkit.session_frames(name)) + len(strays), r, exchange)
    assert (stats["rejected"], stats["rejected_unsubscribed"]) == (str(ticks), str(ticks))
    assert f"{exchange}:{stranger}" not in r.smembers(keys.series)
    assert not r.keys(f"*{stranger}*")
    assert r.hget(keys.gaps(exchange), stranger) is None
    # Logged like parse errors: the first 10 per connection, then every 1,000th.
    logged = [record.getMessage() for record in caplog.records
              if "implausible" in record.getMessage()]
    assert len(logged) == 10 and f"{stranger}: unsubscribed" in logged[0]
