"""The tracker across a Redis outage (its own restartable redis-server) and as a ``bcx tracker``
process stopped by SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.ticks import Tick, Trade, member, trade_member
from bcx.tracker.run import Tracker, tracker_client
from tests import trackerkit
from tests.support import RedisServer, free_port, wait_for

COINBASE = trackerkit.COINBASE
PRODUCTS = trackerkit.COINBASE_PRODUCTS
# The 30 s recording looped at 20x: a steady 150 frames/s with times shifted to now.
SPEED = 20
# At 20x each round's times run ahead of the clock by up to 19/20 of the recording (and each
# round starts where the last one's times ended): let the plausibility gate accept them.
SKEW = "1d"
keys = Keys("bcx")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, with AOF so a restart keeps what was written."""
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def looping_replay() -> Iterator[ReplayServer]:
    server = ReplayServer(COINBASE, speed=SPEED, loop=True)
    server.start()
    yield server
    server.stop()


class Tapped:
    """A tracker whose writer also records every tick the feed handed over and every tick
    it dropped."""

    def __init__(self, config: object):
        self.tracker = Tracker(config, tracker_client(config))
        self.ticks: list[Tick] = []
        self.dropped: list[Tick] = []
        self.outage_start = self.outage_end = self.dropped_before = 0
        writer = self.tracker.writer
        submit, drop = writer.submit, writer.dropped.add

        def tap(ticks: list[Tick]) -> None:
            self.ticks.extend(ticks)
            submit(ticks)

        def tap_drop(tick: Tick) -> None:
            self.dropped.append(tick)
            drop(tick)

        writer.submit = tap  # type: ignore[method-assign]
        writer.dropped.add = tap_drop  # type: ignore[method-assign]

    def members(self, ticks: list[Tick | Trade] | None = None) -> set[tuple[str, str]]:
        """What the submitted ticks (their sizes included) and trades should store."""
        out = set()
        for t in self.ticks if ticks is None else ticks:
            if isinstance(t, Trade):
                out.add((keys.trades(t.exchange, t.symbol), trade_member(t)))
                continue
            out.update((keys.raw(t.exchange, t.symbol, field), member(t.ms, value))
                       for field, value in (*t.values(), *t.sizes()))
        return out

    def trades(self) -> list[Trade]:
        return [t for t in self.ticks if isinstance(t, Trade)]


def stored_members(client: redis.Redis) -> set[tuple[str, str]]:
    out = set()
    for series in client.smembers(keys.series):
        exchange, _, symbol = series.partition(":")
        for field in ("price", "bid", "ask", "bid_size", "ask_size", "trades"):
            key = keys.raw(exchange, symbol, field)
            out.update((key, item) for item in client.zrange(key, 0, -1))
    return out


def run_through_outage(own_redis: RedisServer, replay: ReplayServer, tmp_path: Path,
                       refuse: bool = False, **settings: object) -> Tapped:
    """Stream, stop Redis until the tracker has received 100 more ticks, start it again,
    wait for the buffer to drain, then stop the tracker. With ``refuse`` Redis stays up but
    refuses every write (NOREPLICAS, before running any command of the batch) instead: no
    batch can be half done or done with its reply lost, so what is missing is exact."""
    config = trackerkit.tracker_config(tmp_path, own_redis.url,
                                       {"coinbase": (replay.url, PRODUCTS)},
                                       max_clock_skew=SKEW, **settings)
    tapped = Tapped(config)
    tracker = tapped.tracker
    tracker.start()
    try:
        wait_for(lambda: tracker.writer.written >= 50, message="ticks before the outage")
        tapped.dropped_before = len(tapped.dropped)
        with own_redis.client() as admin:
            if refuse:
                admin.config_set("min-replicas-to-write", 1)
            else:
                own_redis.stop()
        received = len(tapped.ticks)
        tapped.outage_start = received
        wait_for(lambda: not tracker.writer.redis_up and len(tapped.ticks) >= received + 100
                 and any(isinstance(t, Trade) for t in tapped.ticks[received:]),
                 message="ticks and trades received while Redis is down")
        tapped.outage_end = len(tapped.ticks)
        if refuse:
            with own_redis.client() as admin:
                admin.config_set("min-replicas-to-write", 0)
        else:
            own_redis.start()
        wait_for(lambda: tracker.writer.redis_up and tracker.writer.buffered == 0,
                 timeout=15, message="the buffer written after Redis returned")
    finally:
        assert tracker.stop()
    return tapped


def test_redis_outage_loses_no_tick_within_the_buffer_bound(
        own_redis: RedisServer, looping_replay: ReplayServer, tmp_path: Path) -> None:
    tapped = run_through_outage(own_redis, looping_replay, tmp_path)
    assert tapped.tracker.writer.dropped.total == 0
    with own_redis.client() as client:
        assert stored_members(client) == tapped.members()


def test_trades_received_during_an_outage_are_written_when_redis_returns(
        own_redis: RedisServer, looping_replay: ReplayServer, tmp_path: Path) -> None:
    tapped = run_through_outage(own_redis, looping_replay, tmp_path)
    during = [t for t in tapped.ticks[tapped.outage_start:tapped.outage_end]
              if isinstance(t, Trade)]
    assert during, "trades arrived while Redis was down"
    writer = tapped.tracker.writer
    assert writer.dropped.total == 0 and writer.written_trades == len(tapped.trades())
    with own_redis.client() as client:
        for trade in during:
            assert client.zscore(keys.trades(trade.exchange, trade.symbol),
                                 trade_member(trade)) == trade.ms / 1000


def test_ticks_past_the_buffer_bound_are_dropped_oldest_first_and_logged(
        own_redis: RedisServer, looping_replay: ReplayServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bcx.tracker.writer")
    tapped = run_through_outage(own_redis, looping_replay, tmp_path, refuse=True,
                                buffer_max=30)
    dropped = tapped.dropped
    with own_redis.client() as client:
        stored = stored_members(client)
    # The loss as the user sees it, checked against what is missing in Redis (what the feed
    # handed over and Redis does not hold), not against the counter the writer keeps.
    missing = [tick for tick in tapped.ticks if not tapped.members([tick]) <= stored]
    totals = [int(m) for m in re.findall(r"dropped \d+ more ticks, (\d+) in all", caplog.text)]
    assert len(missing) >= 70 and totals[-1] == len(missing)
    assert set(map(id, missing)) == set(map(id, dropped))
    # Oldest first: what was dropped in the outage is one contiguous run of what was received.
    # (A buffer this small may also overflow with the first frames' burst of ticks and
    # trades, before the writer's first batch: those drops come before.)
    during = dropped[tapped.dropped_before:]
    first = next(i for i, tick in enumerate(tapped.ticks) if tick is during[0])
    assert all(a is b for a, b in zip(tapped.ticks[first:], during, strict=False))
    per_series: dict[str, int] = {}
    for tick in dropped:
        per_series[f"coinbase:{tick.symbol}"] = per_series.get(f"coinbase:{tick.symbol}", 0) + 1
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for name, count in per_series.items():
        assert f"{name}: {count} ticks from " in logged


def test_sigterm_flushes_everything_and_exits_zero(r: redis.Redis, redis_url: str,
                                                   looping_replay: ReplayServer,
                                                   tmp_path: Path) -> None:
    config = trackerkit.tracker_config(tmp_path, redis_url,
                                       {"coinbase": ("wss://unused.invalid", PRODUCTS)},
                                       flush_interval="1s", batch_size=100000,
                                       max_clock_skew=SKEW)
    pubsub = r.pubsub()
    pubsub.subscribe(keys.ticks_channel)
    wait_for(lambda: pubsub.get_message(timeout=0.1), message="subscription")
    env = dict(os.environ, BCX_CONF=str(config.path),
               BCX_EXCHANGE_COINBASE_URL=looping_replay.url)
    process = subprocess.Popen([sys.executable, "-m", "bcx.cli", "tracker"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        stats_key = keys.tracker_stats("coinbase")
        wait_for(lambda: int(r.hget(stats_key, "ticks") or 0) >= 100, timeout=15,
                 message="the tracker streaming")
        assert r.exists(keys.heartbeat("tracker"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read().decode() if process.stderr else ""
    published = 0
    while (message := pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "message":
            published += len(json.loads(message["data"]))
    pubsub.close()
    final = r.hgetall(stats_key)
    # A 1 s flush interval means the last second's ticks were only written by the shutdown.
    assert published == int(final["ticks"]), stderr
    assert final["connected"] == "0"
    assert not r.exists(keys.heartbeat("tracker"))
