"""The tracker writer's recovery paths, each judged by what a user sees: what Redis ends up
holding, what is logged, the heartbeat and the exit status of ``bcx tracker``."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bcx.config import TrackerConfig
from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.store.trackerstats import TrackerStats
from bcx.ticks import Tick, Trade
from bcx.tracker.stats import FeedStats
from bcx.tracker.writer import Writer, open_stores
from tests import trackerkit
from tests.support import RedisServer, free_port, wait_for

keys = Keys("bcx")
BASE_MS = 1_700_000_000_000


def ticks(count: int, start: int = 0) -> list[Tick]:
    return [Tick("coinbase", "BTC-USD", BASE_MS + i, price=f"{i}.5", received_ns=1)
            for i in range(start, start + count)]


def stored_ms(r: redis.Redis) -> list[int]:
    members = r.zrange(keys.raw("coinbase", "BTC-USD", "price"), 0, -1, withscores=True)
    return [round(score * 1000) for _, score in members]


@pytest.fixture
def writer_on(r: redis.Redis) -> Iterator:
    """A started Writer whose tick writes fail (as with Redis gone) while ``down`` holds a
    truthy value, or raise that value when it is an exception."""
    writers: list[Writer] = []

    def make(*feeds: FeedStats, **settings: object) -> tuple[Writer, dict[str, object]]:
        config = TrackerConfig(**settings)
        writer = Writer(open_stores(r, keys, config), config, feeds)
        switch: dict[str, object] = {"down": None}
        write = writer.stores.ticks.write

        def switched(batch: list[Tick], trades: list[Trade] = ()) -> int:  # type: ignore[assignment]
            failure = switch["down"]
            if isinstance(failure, BaseException):
                if switch.pop("once", False):
                    switch["down"] = None
                raise failure
            return write(batch, trades)

        writer.stores.ticks.write = switched  # type: ignore[method-assign]
        writers.append(writer)
        writer.start()
        return writer, switch

    yield make
    for writer in writers:
        writer.stop(timeout=2)


def drop_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    """(dropped N more, M in all) of every buffer-overflow error logged."""
    found = []
    for record in caplog.records:
        match = re.search(r"dropped (\d+) more ticks, (\d+) in all", record.getMessage())
        if match:
            found.append((int(match[1]), int(match[2])))
    return found


def test_an_overflowing_buffer_drops_the_oldest_ticks_and_logs_each_tick_once(
        writer_on, r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bcx.tracker.writer")
    writer, switch = writer_on(buffer_max=5, batch_size=100, flush_interval=0.01)
    switch["down"] = redis.ConnectionError("Redis went away")
    frames = [ticks(3, start) for start in range(0, 12, 3)]  # 4 frames of 3 ticks: 12 ticks
    writer.submit(frames[0])
    wait_for(lambda: not writer.redis_up, message="the writer to notice Redis is down")
    for frame in frames[1:]:
        writer.submit(frame)
    wait_for(lambda: writer.dropped.total == 7, message="7 ticks past the bound of 5 dropped")
    switch["down"] = None
    wait_for(lambda: writer.written == 5, timeout=15, message="the buffer written")
    # The newest five survive: what a chart shows after the outage ends is recent.
    assert stored_ms(r) == [BASE_MS + i for i in range(7, 12)]
    logs = drop_logs(caplog)
    # Every dropped tick is reported exactly once across the "N more" lines (not once per
    # frame or per overflow), and the running total ends at the same number.
    assert sum(more for more, _ in logs) == 7 and logs[-1][1] == 7
    assert "coinbase:BTC-USD: 7 ticks from " in caplog.text


def test_a_buffer_exactly_full_drops_nothing(writer_on, r: redis.Redis) -> None:
    writer, switch = writer_on(buffer_max=6, batch_size=100, flush_interval=0.01)
    switch["down"] = redis.ConnectionError("Redis went away")
    writer.submit(ticks(1))
    wait_for(lambda: not writer.redis_up, message="the writer to notice Redis is down")
    writer.submit(ticks(5, 1))
    wait_for(lambda: writer.buffered == 6, message="six ticks buffered")
    switch["down"] = None
    wait_for(lambda: writer.written == 6, timeout=15, message="the buffer written")
    assert writer.dropped.total == 0 and stored_ms(r) == [BASE_MS + i for i in range(6)]
    # Back to normal: Redis counts as up again and the next ticks are written at once.
    wait_for(lambda: writer.redis_up, message="Redis seen up again")
    writer.submit(ticks(1, 6))
    wait_for(lambda: writer.written == 7, message="a tick after the outage written")


def test_one_tick_over_a_full_buffer_drops_exactly_the_oldest(writer_on, r: redis.Redis
                                                               ) -> None:
    writer, switch = writer_on(buffer_max=6, batch_size=100, flush_interval=0.01)
    switch["down"] = redis.ConnectionError("Redis went away")
    writer.submit(ticks(1))
    wait_for(lambda: not writer.redis_up, message="the writer to notice Redis is down")
    writer.submit(ticks(6, 1))
    wait_for(lambda: writer.dropped.total == 1, message="the seventh tick dropping one")
    switch["down"] = None
    wait_for(lambda: writer.written == 6, timeout=15, message="the buffer written")
    assert stored_ms(r) == [BASE_MS + i for i in range(1, 7)]


def test_a_batch_that_can_never_be_written_is_dropped_logged_and_counted(
        writer_on, r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bcx.tracker.writer")
    writer, switch = writer_on(FeedStats("coinbase"), batch_size=100, flush_interval=0.01,
                               stats_interval=0.05)
    switch.update(down=ValueError("a value Redis cannot take"), once=True)
    writer.submit(ticks(3))
    wait_for(lambda: writer.dropped.total == 3, message="the poisoned batch dropped")
    writer.submit(ticks(2, 3))
    wait_for(lambda: writer.written == 2, message="the next batch written")
    # Not retried forever: the writer went on, the next ticks are stored, the loss is visible.
    assert stored_ms(r) == [BASE_MS + 3, BASE_MS + 4]
    assert "a batch of 3 ticks cannot be written; dropped" in caplog.text
    wait_for(lambda: r.hget(keys.heartbeat("tracker"), "dropped") == "3",
             message="the heartbeat reporting 3 dropped")
    assert writer.stop()


def test_gap_counts_survive_a_failed_stats_write(writer_on, r: redis.Redis,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [redis.ConnectionError("Redis went away mid-write")] * 2
    write = TrackerStats.write

    def flaky(self: TrackerStats, *args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return write(self, *args, **kwargs)

    monkeypatch.setattr(TrackerStats, "write", flaky)
    feed = FeedStats("bitfinex")
    feed.add_gaps([("BTC-USD", 2), ("*", 1)])
    writer_on(feed, stats_interval=0.05)
    wait_for(lambda: not failures and r.exists(keys.tracker_stats("bitfinex")),
             message="the stats written after two failures")
    assert r.hgetall(keys.gaps("bitfinex")) == {"BTC-USD": "2", "*": "1"}
    assert r.hget(keys.tracker_stats("bitfinex"), "gaps") == "3"


def test_tracker_exits_1_when_redis_is_gone_at_shutdown_with_ticks_buffered(
        tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port())
    server.start()
    replay = ReplayServer(trackerkit.COINBASE, speed=20, loop=True)
    replay.start()
    config = trackerkit.tracker_config(
        tmp_path, server.url, {"coinbase": ("wss://unused.invalid", trackerkit.COINBASE_PRODUCTS)},
        max_clock_skew="1d")
    log_path = tmp_path / "tracker.log"
    env = dict(os.environ, BCX_CONF=str(config.path), BCX_EXCHANGE_COINBASE_URL=replay.url)
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "bcx.cli", "tracker"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)
    try:
        with server.client() as client:
            wait_for(lambda: int(client.hget(keys.tracker_stats("coinbase"), "ticks") or 0) > 0,
                     timeout=15, message="the tracker streaming")
        server.stop()
        wait_for(lambda: "buffering up to" in log_path.read_text(), timeout=15,
                 message="the tracker buffering with Redis gone")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 1, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        replay.stop()
        server.stop()
    text = log_path.read_text()
    assert re.search(r"stopping with Redis unreachable: \d+ ticks not written", text), text
    assert "tracker stopped with unwritten ticks" in text


def test_tracker_exits_1_naming_the_dead_writer_thread_and_keeps_what_it_stored(
        r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A bug kills the writer thread mid-stream (no Redis error: a crash the writer cannot
    sort): ``run()`` notices, says so and returns 1 so the service manager restarts the
    tracker; what was written before stays in Redis, nothing more is written."""
    from bcx.tracker import run as runmod

    caplog.set_level(logging.INFO, logger="bcx.tracker.run")
    crashes: list[BaseException] = []
    monkeypatch.setattr("threading.excepthook", lambda args: crashes.append(args.exc_value))
    write_stats = Writer._write_stats

    def stored() -> int:
        return sum(r.zcard(keys.raw("coinbase", symbol, field))
                   for symbol in trackerkit.COINBASE_PRODUCTS for field in ("price", "bid", "ask"))

    at_crash: list[int] = []

    def buggy(self: Writer) -> None:
        if self.written:
            at_crash.append(stored())
            raise RuntimeError("a bug in the stats step")
        write_stats(self)

    monkeypatch.setattr(Writer, "_write_stats", buggy)
    stops: list[object] = []
    monkeypatch.setattr(runmod, "install_stop_handlers", stops.append)
    replay = ReplayServer(trackerkit.COINBASE, speed=20, loop=True)
    replay.start()
    status: list[int] = []
    config = trackerkit.tracker_config(
        tmp_path, redis_url, {"coinbase": (replay.url, trackerkit.COINBASE_PRODUCTS)},
        max_clock_skew="1d")
    thread = threading.Thread(target=lambda: status.append(runmod.run(config)), daemon=True)
    thread.start()
    try:
        wait_for(lambda: status, timeout=20, message="run() to return after the writer died")
    finally:
        if not status and stops:
            stops[0].set()  # type: ignore[attr-defined]
        thread.join(timeout=20)
        replay.stop()
    assert status == [1]
    assert [str(exc) for exc in crashes] == ["a bug in the stats step"]
    assert "the writer thread died: exiting so the service manager restarts us" in caplog.text
    # What was written before the crash stays; nothing is written after it.
    assert at_crash[0] > 0 and stored() == at_crash[0]
