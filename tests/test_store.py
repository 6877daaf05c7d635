"""The raw time-series store against a real redis-server."""

from __future__ import annotations

import json

import pytest
import redis

from bcx.keys import Keys
from bcx.redisconn import connect
from bcx.store import RollupStore, Store, TradeStore
from bcx.store.events import EventStream
from bcx.ticks import Tick, Trade
from bcx.timeutil import now_ms
from tests.support import RedisServer

T0 = 1_700_000_000_000  # epoch ms


def price(ms: int, value: str, symbol: str = "BTC-USD", exchange: str = "coinbase") -> Tick:
    return Tick(exchange, symbol, ms, price=value)


def test_recurring_price_is_not_lost(store: Store):
    store.write([price(T0 + i * 1000, "50000.00") for i in range(1000)])
    points = store.range("coinbase", "BTC-USD", "price")
    assert len(points) == 1000
    assert {value for _, value in points} == {"50000.00"}
    assert [ms for ms, _ in points] == [T0 + i * 1000 for i in range(1000)]


def test_exact_repeat_is_stored_once(store: Store):
    store.write([price(T0, "1.5"), price(T0, "1.5")])
    store.write([price(T0, "1.5")])
    assert store.range("coinbase", "BTC-USD", "price") == [(T0, "1.5")]


def test_same_ms_different_value_keeps_both(store: Store):
    store.write([price(T0, "1.5"), price(T0, "1.6")])
    assert sorted(store.range("coinbase", "BTC-USD", "price")) == [(T0, "1.5"), (T0, "1.6")]


def test_decimal_strings_are_kept_verbatim(store: Store, r):
    store.write([Tick("binance", "ZIL-USDT", T0, bid="0.21437000", ask="0.21449000"),
                 Tick("bitfinex", "BTC-USD", T0, price="4.9e-7")])
    assert store.range("binance", "ZIL-USDT", "bid") == [(T0, "0.21437000")]
    assert store.range("bitfinex", "BTC-USD", "price") == [(T0, "4.9e-7")]
    assert r.zrange("bcx:{binance:ZIL-USDT}:ask", 0, -1, withscores=True) == [
        (f"{T0}:0.21449000", T0 / 1000)]


def test_range_honours_start_end_and_limit(store: Store):
    store.write([price(T0 + i * 1000, str(i)) for i in range(100)])
    window = store.range("coinbase", "BTC-USD", "price", T0 + 10_000, T0 + 19_000)
    assert [value for _, value in window] == [str(i) for i in range(10, 20)]
    limited = store.range("coinbase", "BTC-USD", "price", T0 + 10_000, T0 + 19_000, limit=3)
    assert [value for _, value in limited] == ["10", "11", "12"]
    newest = store.range("coinbase", "BTC-USD", "price", limit=2, newest_first=True)
    assert [value for _, value in newest] == ["99", "98"]
    assert store.range("coinbase", "BTC-USD", "price", start_ms=T0 + 99_001) == []
    assert store.count("coinbase", "BTC-USD", "price", T0, T0 + 9_000) == 10


def test_trim_removes_exactly_the_older_points(store: Store):
    store.write([price(T0 + i, str(i)) for i in range(50)])
    removed = store.trim("coinbase", "BTC-USD", "price", T0 + 20)
    assert removed == 20
    points = store.range("coinbase", "BTC-USD", "price")
    assert [ms for ms, _ in points] == [T0 + i for i in range(20, 50)]


def test_latest_values_follow_the_newest_tick(store: Store):
    store.write([Tick("coinbase", "BTC-USD", T0, price="1", bid="0.9", ask="1.1"),
                 Tick("coinbase", "BTC-USD", T0 + 5, price="2")])
    store.write([Tick("coinbase", "BTC-USD", T0 + 1, price="old")])  # late: latest stays
    latest = store.latest("coinbase", "BTC-USD")
    assert latest["price"] == "2" and latest["price_ms"] == T0 + 5
    assert latest["bid"] == "0.9" and latest["ask"] == "1.1"
    assert latest["time"] == T0 + 5
    assert store.latest("coinbase", "NOPE-USD") is None


def test_series_time_never_moves_back_when_a_later_batch_brings_an_older_field(
        store: Store):
    # Binance: a bookTicker stamped with the receive time, then a trade stamped with its
    # (earlier) trade time in the next batch.
    store.write([Tick("binance", "BTC-USDT", T0 + 10, bid="0.9", ask="1.1")])
    store.write([Tick("binance", "BTC-USDT", T0 + 3, price="1")])
    latest = store.latest("binance", "BTC-USDT")
    assert latest["price"] == "1" and latest["price_ms"] == T0 + 3
    assert latest["time"] == T0 + 10


def test_many_series_in_one_batch_are_listed(store: Store):
    store.write([price(T0, "1", "BTC-USD"), price(T0, "2", "ETH-USD"),
                 Tick("kraken", "BTC-USD", T0, bid="3")])
    assert store.series() == [("coinbase", "BTC-USD"), ("coinbase", "ETH-USD"),
                              ("kraken", "BTC-USD")]
    latest = store.latest_many(store.series())
    assert [item["time"] for item in latest] == [T0, T0, T0]


def test_batch_is_one_round_trip(store: Store, r, monkeypatch):
    # Observed on the wire and on the server, not by counting pipeline() calls: the client
    # sends the batch in one write and Redis executes every command of it.
    sends = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting_send(self, command, *args, **kwargs):
        sends.append(1)
        return original(self, command, *args, **kwargs)

    r.config_resetstat()
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command",
                        counting_send)
    store.write([price(T0 + i, "1", f"S{i % 10}-USD") for i in range(500)],
                [Trade("coinbase", "S0-USD", T0, "1", "2", "buy", "1")])  # trades join it
    monkeypatch.undo()
    assert len(sends) == 1
    stats = r.info("commandstats")
    assert stats["cmdstat_zadd"]["calls"] == 11 and stats["cmdstat_hset"]["calls"] == 10
    assert r.zcard(store.keys.raw("coinbase", "S0-USD", "price")) == 50


def test_published_batch_carries_the_ticks(r, keys: Keys):
    store = Store(r, keys, publish_ticks=True)
    pubsub = r.pubsub()
    pubsub.subscribe(keys.ticks_channel)
    pubsub.get_message(timeout=1)
    store.write([Tick("coinbase", "BTC-USD", T0, price="10", bid="9"),
                 Tick("coinbase", "BTC-USD", T0 + 1, ask="11")])
    message = pubsub.get_message(timeout=5)
    assert json.loads(message["data"]) == [
        {"series": "coinbase:BTC-USD", "time": T0, "price": "10", "bid": "9"},
        {"series": "coinbase:BTC-USD", "time": T0 + 1, "ask": "11"}]
    pubsub.close()


class TestKeysLeftInRedis:
    """After each store operation the keys in Redis are exactly the expected set."""

    def test_after_write(self, store: Store, r):
        store.write([Tick("coinbase", "BTC-USD", T0, price="1", bid="0.9"),
                     Tick("kraken", "ETH-USD", T0, ask="2")])
        assert set(r.keys("*")) == {
            "bcx:{coinbase:BTC-USD}:price", "bcx:{coinbase:BTC-USD}:bid",
            "bcx:{coinbase:BTC-USD}:latest", "bcx:{kraken:ETH-USD}:ask",
            "bcx:{kraken:ETH-USD}:latest", "bcx:series"}
        assert r.ttl("bcx:series") == -1  # history is kept by retention, never by TTL

    def test_after_reads(self, store: Store, r):
        store.write([price(T0, "1")])
        before = set(r.keys("*"))
        store.range("coinbase", "BTC-USD", "price")
        store.latest("coinbase", "BTC-USD")
        store.series()
        assert set(r.keys("*")) == before

    def test_after_trimming_everything(self, store: Store, r):
        store.write([price(T0, "1")])
        store.trim("coinbase", "BTC-USD", "price", T0 + 1)
        assert set(r.keys("*")) == {"bcx:{coinbase:BTC-USD}:latest", "bcx:series"}

    def test_custom_prefix(self, r):
        Store(r, Keys("mon")).write([price(T0, "1")])
        assert set(r.keys("*")) == {"mon:{coinbase:BTC-USD}:price",
                                    "mon:{coinbase:BTC-USD}:latest", "mon:series"}


@pytest.mark.parametrize("path", ["/0", "/3"])
def test_connect_with_url_password_and_db(redis_server, path):
    client = redis_server.client()
    client.config_set("requirepass", "s3cret")
    try:
        remote = connect(f"redis://:s3cret@127.0.0.1:{redis_server.port}{path}")
        Store(remote).write([price(T0, "1")])
        assert remote.connection_pool.connection_kwargs["db"] == int(path[1:])
        assert remote.exists("bcx:series") == 1
        remote.flushdb()
        remote.close()
    finally:
        authed = connect(f"redis://:s3cret@127.0.0.1:{redis_server.port}/0")
        authed.config_set("requirepass", "")
        authed.close()


def test_connect_over_unix_socket(tmp_path):
    server = RedisServer(tmp_path / "unix", unixsocket=tmp_path / "redis.sock")
    server.start()
    try:
        client = connect(f"unix://{tmp_path / 'redis.sock'}?db=2")
        Store(client).write([price(T0, "1")])
        assert client.connection_pool.connection_kwargs["db"] == 2
        assert Store(client).range("coinbase", "BTC-USD", "price") == [(T0, "1")]
        client.close()
    finally:
        server.stop()


def test_rediss_url_builds_a_tls_connection():
    client = connect("rediss://:pw@example.invalid:6380/1")
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    assert kwargs["password"] == "pw" and kwargs["db"] == 1 and kwargs["port"] == 6380


# ---------------------------------------------------------------- reads the API relies on
def test_tick_count_honours_each_bound(store: Store):
    store.write([price(T0 + i, str(i)) for i in range(5)])
    count = store.count
    assert count("coinbase", "BTC-USD", "price") == 5
    assert count("coinbase", "BTC-USD", "price", start_ms=T0 + 3) == 2
    assert count("coinbase", "BTC-USD", "price", end_ms=T0 + 1) == 2
    assert count("coinbase", "BTC-USD", "price", T0 + 1, T0 + 3) == 3


def test_latest_gives_trade_time_as_int(r, keys: Keys):
    Store(r, keys).write([], [Trade("coinbase", "BTC-USD", T0, "10", "0.5", "buy", "7")])
    latest = Store(r, keys).latest("coinbase", "BTC-USD")
    assert latest is not None and latest["last_trade_ms"] == T0


def trades_at(*offsets: int) -> list[Trade]:
    return [Trade("coinbase", "BTC-USD", T0 + i, f"{i}.5", "1", "sell", str(i)) for i in offsets]


def test_trade_count_honours_each_bound_and_the_series(r, keys: Keys):
    trades = TradeStore(r, keys)
    trades.write(trades_at(0, 1, 2, 3, 4))
    trades.write([Trade("kraken", "BTC-USD", T0, "1", "1", "buy", "k"),
                  Trade("coinbase", "ETH-USD", T0, "1", "1", "buy", "e")])
    assert trades.count("coinbase", "BTC-USD") == 5
    assert trades.count("coinbase", "BTC-USD", start_ms=T0 + 3) == 2  # bounds inclusive
    assert trades.count("coinbase", "BTC-USD", end_ms=T0 + 1) == 2
    assert trades.count("coinbase", "BTC-USD", T0 + 1, T0 + 3) == 3
    assert trades.count("coinbase", "DOGE-USD") == 0


def test_trade_page_end_is_exclusive_limit_caps_and_bad_members_are_skipped(r, keys: Keys):
    trades = TradeStore(r, keys)
    trades.write(trades_at(0, 2, 3, 4))
    r.zadd(keys.trades("coinbase", "BTC-USD"), {"not a trade": (T0 + 1) / 1000})
    assert [t.ms - T0 for t in trades.page("coinbase", "BTC-USD", T0)] == [0, 2, 3, 4]
    assert [t.ms - T0 for t in trades.page("coinbase", "BTC-USD", T0, T0 + 3)] == [0, 2]
    assert [t.ms - T0 for t in trades.page("coinbase", "BTC-USD", T0, limit=3)] == [0, 2]


def test_trade_range_limit_and_order(r, keys: Keys):
    trades = TradeStore(r, keys)
    trades.write(trades_at(0, 2, 3, 4))
    assert [t.ms - T0 for t in trades.range("coinbase", "BTC-USD", limit=2)] == [0, 2]
    assert [t.ms - T0 for t in trades.range("coinbase", "BTC-USD", newest_first=True,
                                            limit=2)] == [4, 3]


def test_watermark_of_a_roll_up_never_built_is_none(r, keys: Keys):
    assert RollupStore(r, keys).watermark("coinbase", "BTC-USD", "price", 60) is None


def test_recent_reports_are_the_last_ones_oldest_first(r, keys: Keys):
    stream = EventStream(r, keys)
    for text in ("a", "b", "c"):
        stream.publish(text, 100)
    r.xadd(stream.stream, {"other": "x"})
    assert stream.recent_reports(3) == ["b", "c", ""]


def test_write_returns_the_values_it_sent(store: Store):
    ticks = [Tick("binance", "BTC-USDT", T0, bid="1", ask="2", bid_size="3", ask_size="4"),
             Tick("binance", "BTC-USDT", T0 + 1, price="1.5"),
             Tick("binance", "ETH-USDT", T0, bid="5", ask="6")]
    trades = [Trade("binance", "BTC-USDT", T0, "1.5", "0.1", "buy", "7"),
              Trade("binance", "ETH-USDT", T0, "5.5", "2", "sell", "8")]
    assert store.write(ticks, trades) == 4 + 1 + 2 + 2
    assert store.write([], trades[:1]) == 1


def test_of_two_values_in_one_millisecond_the_later_one_is_latest(store: Store):
    store.write([Tick("coinbase", "BTC-USD", T0, price="1", bid="0.9"),
                 Tick("coinbase", "BTC-USD", T0, price="2", bid="0.8")],
                [Trade("coinbase", "BTC-USD", T0, "1", "0.5", "buy", "1"),
                 Trade("coinbase", "BTC-USD", T0, "2", "0.7", "sell", "2")])
    latest = store.latest("coinbase", "BTC-USD")
    assert (latest["price"], latest["bid"]) == ("2", "0.8")
    assert (latest["last_size"], latest["last_side"]) == ("0.7", "sell")


def test_each_series_keeps_its_own_newest_trade(store: Store):
    store.write([], [Trade("coinbase", "BTC-USD", T0 + 10, "1", "0.5", "buy", "1"),
                     Trade("coinbase", "ETH-USD", T0, "2", "0.7", "sell", "2")])
    assert store.latest("coinbase", "ETH-USD")["last_size"] == "0.7"
    assert store.latest("coinbase", "BTC-USD")["last_size"] == "0.5"


def test_a_series_time_ahead_of_the_clock_is_not_believed(store: Store):
    ahead = now_ms() + 3_600_000
    store.write([price(ahead, "9")])
    store.write([price(ahead - 7_200_000, "1")])
    latest = store.latest("coinbase", "BTC-USD")
    assert (latest["price"], latest["time"]) == ("1", ahead - 7_200_000)


def test_a_lost_live_notice_is_logged_and_the_batch_stays_stored(r, keys: Keys, monkeypatch,
                                                                 caplog):
    store = Store(r, keys, publish_ticks=True)

    def refuse(*args, **kwargs):
        raise redis.ConnectionError("publish refused")

    monkeypatch.setattr(r, "publish", refuse)
    store.write([price(T0, "1")])
    assert store.range("coinbase", "BTC-USD", "price") == [(T0, "1")]
    assert [record.getMessage() for record in caplog.records if record.levelname == "WARNING"] == [
        "live tick notice not published (the batch is stored): publish refused"]
