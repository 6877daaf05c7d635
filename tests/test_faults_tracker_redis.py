"""The tracker sorts Redis errors: a misconfiguration (a key of another type, a password it
lacks) stops ``bcx tracker`` with exit status 2 and one message naming the setting to fix; a
replica's READONLY is waited out with the ticks buffered."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.tracker.run import EXIT_MISCONFIGURED
from tests import trackerkit
from tests.support import RedisServer, wait_for

PRODUCTS = trackerkit.COINBASE_PRODUCTS
keys = Keys("bcx")


@pytest.fixture
def looping_replay() -> Iterator[ReplayServer]:
    server = ReplayServer(trackerkit.COINBASE, speed=20, loop=True)
    server.start()
    yield server
    server.stop()


def start_tracker(tmp_path: Path, redis_url: str, replay: ReplayServer) -> subprocess.Popen:
    config = trackerkit.tracker_config(tmp_path, redis_url,
                                       {"coinbase": ("wss://unused.invalid", PRODUCTS)},
                                       max_clock_skew="1d")
    env = dict(os.environ, BCX_CONF=str(config.path), BCX_EXCHANGE_COINBASE_URL=replay.url)
    return subprocess.Popen([sys.executable, "-m", "bcx.cli", "tracker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 20) -> tuple[int, str]:
    try:
        status = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return status, process.stderr.read() if process.stderr else ""


def readonly_refusals(client: redis.Redis) -> int:
    return int(client.info("errorstats").get("errorstat_READONLY", {}).get("count", 0))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line or "Traceback" in line]


def test_a_raw_key_of_another_type_stops_the_tracker_naming_the_prefix(
        r: redis.Redis, redis_url: str, looping_replay: ReplayServer, tmp_path: Path) -> None:
    for symbol in PRODUCTS:
        r.set(keys.raw("coinbase", symbol, "price"), "another program's value")
    status, stderr = finish(start_tracker(tmp_path, redis_url, looping_replay))
    assert status == EXIT_MISCONFIGURED, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "WRONGTYPE" in errors[0] and "[redis] prefix" in errors[0]
    # It did not go on buffering as if Redis were unreachable.
    assert "Redis unreachable" not in stderr
    assert not r.exists(keys.heartbeat("tracker"))


def test_a_password_the_tracker_lacks_stops_it_naming_the_url(
        looping_replay: ReplayServer, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        with server.client() as admin:
            admin.config_set("requirepass", "s3cret")
        status, stderr = finish(start_tracker(tmp_path, server.url, looping_replay))
    finally:
        server.stop()
    assert status == EXIT_MISCONFIGURED, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "[redis] url" in errors[0] and "s3cret" not in stderr


def test_a_read_only_replica_is_waited_out_with_the_ticks_buffered(
        r: redis.Redis, redis_url: str, looping_replay: ReplayServer, tmp_path: Path) -> None:
    # Replica of a port nobody listens on: every write answers READONLY until REPLICAOF NO ONE.
    primary = RedisServer(tmp_path / "primary")
    r.config_resetstat()
    r.replicaof("127.0.0.1", primary.port)
    process = start_tracker(tmp_path, redis_url, looping_replay)
    try:
        # Refused again and again (ticks, stats, heartbeat), and still running.
        wait_for(lambda: readonly_refusals(r) >= 10, timeout=20, message="READONLY replies")
        assert process.poll() is None
        assert not r.exists(keys.heartbeat("tracker"))
        r.replicaof("no", "one")
        wait_for(lambda: int(r.hget(keys.tracker_stats("coinbase"), "ticks") or 0) > 0
                 and r.exists(keys.raw("coinbase", PRODUCTS[0], "price")), timeout=20,
                 message="the buffered ticks written once the replica became a primary")
        assert r.exists(keys.heartbeat("tracker"))
        process.terminate()
        status, stderr = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        r.replicaof("no", "one")
    assert status == 0, stderr
    assert "Redis unreachable (" in stderr and "read only replica" in stderr
