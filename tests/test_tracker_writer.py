"""The tracker's writer on its own: batches that flush when full or after the flush interval,
the heartbeat with its TTL, stats and gap counts."""

from __future__ import annotations

from collections.abc import Iterator

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
