"""The tracker's writer on its own: batches that flush when full or after the flush interval,
the heartbeat with its TTL, stats and gap counts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis

from bcx.config import TrackerConfig
from bcx.events import FIRING, TriggerEvent, publish
from bcx.keys import Keys
from bcx.ticks import Tick, Trade
from bcx.tracker import writer as writermod
from bcx.tracker.stats import FeedStats
from bcx.tracker.writer import Writer, open_stores
from tests.support import wait_for

keys = Keys("bcx")


def ticks(count: int, start: int = 0) -> list[Tick]:
    return [Tick("coinbase", "BTC-USD", 1_700_000_000_000 + i, price=f"{i}.50",
                 received_ns=1) for i in range(start, start + count)]


@pytest.fixture
def make_writer(r: redis.Redis) -> Iterator:
    writers: list[Writer] = []

    def make(*feeds: FeedStats, **settings: object) -> tuple[Writer, list[int]]:
        config = TrackerConfig(**settings)
        writer = Writer(open_stores(r, keys, config), config, feeds)
        sizes: list[int] = []
        write = writer.stores.ticks.write

        def spy(batch: list[Tick], trades: list[Trade] = ()) -> int:  # type: ignore[assignment]
            sizes.append(len(batch) + len(trades))
            return write(batch, trades)

        writer.stores.ticks.write = spy  # type: ignore[method-assign]
        writers.append(writer)
        writer.start()
        return writer, sizes

    yield make
    for writer in writers:
        writer.stop()


def test_full_batches_are_written_at_once_and_the_rest_waits(make_writer, r: redis.Redis
                                                             ) -> None:
    writer, sizes = make_writer(batch_size=10, flush_interval=3600.0)
    for tick in ticks(25):
        writer.submit([tick])
    wait_for(lambda: writer.written == 20, message="two full batches")
    assert sizes == [10, 10] and writer.buffered == 5
    assert writer.stop()
    assert sizes == [10, 10, 5]
    assert r.zcard(keys.raw("coinbase", "BTC-USD", "price")) == 25


def test_a_partial_batch_is_written_after_the_flush_interval(make_writer) -> None:
    writer, sizes = make_writer(batch_size=1000, flush_interval=0.05)
    writer.submit(ticks(3))
    wait_for(lambda: writer.written == 3, message="the partial batch")
    assert sizes == [3]


def test_heartbeat_has_a_ttl_and_latency_and_stop_clears_it(make_writer, r: redis.Redis
                                                            ) -> None:
    writer, _ = make_writer(FeedStats("coinbase"), stats_interval=0.1, heartbeat_ttl=30.0,
                            flush_interval=0.01)
    writer.submit(ticks(5))
    beat = wait_for(lambda: (b := r.hgetall(keys.heartbeat("tracker"))).get("written") == "5"
                    and b, message="a heartbeat counting the ticks")
    assert beat["exchanges"] == "coinbase" and beat["buffered"] == "0"
    assert 0 < r.pttl(keys.heartbeat("tracker")) <= 30_000
    writer.stop()
    assert not r.exists(keys.heartbeat("tracker"))


def test_stats_and_gaps_are_written_per_exchange(make_writer, r: redis.Redis) -> None:
    feed = FeedStats("bitfinex", frames=7, ticks=3, parse_errors=1)
    feed.add_gaps([("BTC-USD", 2), ("*", 1)])
    make_writer(feed, stats_interval=0.1)
    wait_for(lambda: r.hget(keys.gaps("bitfinex"), "BTC-USD") == "2", message="gap counts")
    assert r.hgetall(keys.gaps("bitfinex")) == {"BTC-USD": "2", "*": "1"}
    stats = r.hgetall(keys.tracker_stats("bitfinex"))
    assert (stats["frames"], stats["ticks"], stats["parse_errors"], stats["gaps"]) == (
        "7", "3", "1", "3")
    feed.add_gaps([("BTC-USD", 1)])
    wait_for(lambda: r.hget(keys.gaps("bitfinex"), "BTC-USD") == "3",
             message="a later gap added, not the total written again")


def test_gaps_are_counted_once_when_publishing_an_event_fails(make_writer, r: redis.Redis,
                                                             monkeypatch) -> None:
    failures = [redis.ConnectionError("Redis went away mid-write")]

    def flaky_publish(*args: object) -> str:
        if failures:
            raise failures.pop()
        return publish(*args)

    monkeypatch.setattr(writermod, "publish", flaky_publish)
    feed = FeedStats("bitfinex")
    feed.add_gaps([("BTC-USD", 2)])
    writer, _ = make_writer(feed, stats_interval=0.1)
    writer.publish_event(TriggerEvent(rule="feed_down:bitfinex", series="bitfinex:*",
                                      state=FIRING, kind="feed_down", message="down"))
    wait_for(lambda: r.xlen(keys.events_stream) == 1, message="the event, published on retry")
    assert writer.stop()
    assert r.hgetall(keys.gaps("bitfinex")) == {"BTC-USD": "2"}


def test_open_stores_takes_prefix_tick_notices_and_instance_from_the_config(r: redis.Redis
                                                                            ) -> None:
    other = Keys("zz")
    stores = open_stores(r, other, TrackerConfig(publish_ticks=True, instance="b"))
    pubsub = r.pubsub()
    pubsub.subscribe(other.ticks_channel)
    pubsub.get_message(timeout=1)
    stores.ticks.write(ticks(1))
    assert r.exists(other.raw("coinbase", "BTC-USD", "price"))
    assert pubsub.get_message(timeout=5) is not None, "no live tick notice"
    pubsub.close()
    stores.tracker_stats.write({"coinbase": {"frames": 1}}, {})
    assert r.hget(other.tracker_stats("coinbase", "b"), "frames") == "1"


def test_throttled_warning_counts_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("bcx.tests.throttled")
    caplog.set_level(logging.WARNING, logger=logger.name)
    warn = writermod.ThrottledWarning(logger, 3600.0)
    for n in range(4):
        warn("failed %d", n)
    warn.next_at = 0.0  # the interval is over
    warn("failed %d", 4)
    warn.next_at = 0.0
    warn("failed %d", 5)
    assert [record.getMessage() for record in caplog.records] == [
        "failed 0", "failed 4 (and 3 more since the last report)", "failed 5"]


def test_trades_are_written_counted_and_measured(make_writer, r: redis.Redis) -> None:
    writer, _ = make_writer(flush_interval=0.01, stats_interval=3600.0)

    def trade(i: int) -> Trade:
        return Trade("coinbase", "BTC-USD", 1_700_000_000_000 + i, "1.5", "2", "buy", str(i),
                     received_ns=1)

    writer.submit([trade(0), trade(1)])
    wait_for(lambda: writer.written_trades == 2, message="the first two trades")
    writer.submit([trade(2)])
    wait_for(lambda: writer.written_trades == 3, message="a third trade, counted on top")
    assert r.zcard(keys.trades("coinbase", "BTC-USD")) == 3
    # The heartbeat's latency figures come from the window since the last beat.
    assert writer._heartbeat_info()["latency_p50_ms"] != ""


def test_a_refused_password_stops_the_writer_saying_what_to_set(make_writer) -> None:
    writer, _ = make_writer(flush_interval=0.01)

    def refuse(batch: list[Tick], trades: list[Trade] = ()) -> int:
        raise redis.AuthenticationError("invalid username-password pair")

    writer.stores.ticks.write = refuse  # type: ignore[method-assign]
    writer.submit(ticks(1))
    wait_for(lambda: not writer.thread.is_alive(), message="the writer to stop")
    assert writer.fatal is not None and "[redis] url" in writer.fatal


def test_a_failed_write_schedules_the_retry_later(r: redis.Redis) -> None:
    config = TrackerConfig()
    writer = Writer(open_stores(r, keys, config), config)
    before = time.monotonic()
    writer._redis_failed(redis.ConnectionError("gone"))
    assert writer.retry_at > before and not writer.redis_up


def test_a_feed_waits_for_room_while_redis_is_up_and_never_while_it_is_down(
        r: redis.Redis) -> None:
    config = TrackerConfig(batch_size=10)
    writer = Writer(open_stores(r, keys, config), config)  # not started: the fake room drains
    waits: list[float | None] = []

    def wait(timeout: float | None) -> bool:
        waits.append(timeout)
        writer.inbox.get_nowait()  # the writer takes one frame
        return False

    writer.room = SimpleNamespace(clear=lambda: None, wait=wait, set=lambda: None)
    limit = writer.inbox_limit
    for _ in range(limit):
        writer.submit([])
    assert waits == []  # up to the limit a feed never waits
    writer.submit([])  # one over: it waits until the writer has taken half
    assert writer.inbox.qsize() == limit // 2
    assert len(waits) == limit // 2 + 1
    assert all(timeout is not None and 0 < timeout <= 0.1 for timeout in waits)
    writer.redis_up = False
    for _ in range(limit):
        writer.submit([])  # Redis down: the feeds keep receiving into the buffer
    assert len(waits) == limit // 2 + 1 and writer.inbox.qsize() == limit // 2 + limit


def test_feed_events_keep_the_stream_capped(r: redis.Redis) -> None:
    config = TrackerConfig()
    writer = Writer(open_stores(r, keys, config), config, stream_maxlen=1)
    r.config_set("stream-node-max-entries", 1)  # so that approximate trimming is exact
    try:
        for n in range(5):
            writer.publish_event(TriggerEvent(rule=f"feed_down:x{n}", series="x:*",
                                              state=FIRING, kind="feed_down", message="down"))
        assert writer._publish_events() is None
    finally:
        r.config_set("stream-node-max-entries", 100)
    assert r.xlen(keys.events_stream) <= 2
