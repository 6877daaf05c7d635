"""Watcher against a misconfigured or failing-over Redis: a misconfiguration (a key of another
type, a missing password) stops `bcx watcher` with one message naming the setting to fix
instead of a restart loop; a node that is a read-only replica for a while is waited out."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bcx.keys import Keys
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from bcx.watcher.run import HISTORY, RULES
from tests.support import RedisServer, wait_for

ROOT = Path(__file__).resolve().parent.parent
ADVICE_WAIT_S = 60  # generous: the process stops at its first Redis command


def write_config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "bcx.conf"
    path.write_text(f"""\
[redis]
url = {redis_url}

[watcher]
rollups = 60s:1d
rollup_every = 200ms
rule_interval = 100ms
restart_backoff_max = 300ms
heartbeat_ttl = 3s
archive_dir = {tmp_path / "archive"}
""")
    return path


def run_watcher(tmp_path: Path, redis_url: str) -> subprocess.CompletedProcess[str]:
    """`bcx watcher` to its end; a watcher still running after ADVICE_WAIT_S is a failure."""
    return subprocess.run([sys.executable, "-m", "bcx.cli", "watcher", "--config",
                           str(write_config(tmp_path, redis_url))], cwd=ROOT,
                          capture_output=True, text=True, timeout=ADVICE_WAIT_S)


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server of the test's own, beside the session's."""
    server = RedisServer(tmp_path / "second-redis")
    server.start()
    yield server
    server.stop()


def test_a_rules_key_of_another_type_stops_the_watcher_naming_the_prefix(
        r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    r.set(Keys("bcx").rules, "x")  # another program's key where BCX keeps its rules
    done = run_watcher(tmp_path, redis_url)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.count("[redis] prefix") == 1, done.stderr[-2000:]
    assert "WRONGTYPE" in done.stderr and "Traceback" not in done.stderr
    assert r.get(Keys("bcx").rules) == "x"  # nothing of it was touched


def test_a_redis_asking_for_a_password_stops_the_watcher_naming_the_url(
        second_redis: RedisServer, tmp_path: Path) -> None:
    client = second_redis.client()
    client.config_set("requirepass", "not-given")
    client.close()
    done = run_watcher(tmp_path, second_redis.url)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.count("[redis] url") == 1, done.stderr[-2000:]
    assert "not-given" not in done.stderr


def test_a_watcher_on_a_replica_waits_until_it_is_promoted_then_works(
        r: redis.Redis, redis_server: RedisServer, second_redis: RedisServer,
        tmp_path: Path) -> None:
    keys = Keys("bcx")
    now = now_ms()
    Store(r, keys).write([Tick("kraken", "BTC-USD", now - 180_000 + i * 1000, price=f"{100 + i}")
                          for i in range(120)])
    replica = second_redis.client()
    replica.replicaof("127.0.0.1", redis_server.port)
    wait_for(lambda: replica.exists(keys.raw("kraken", "BTC-USD", "price")), timeout=30,
             message="the replica's copy of the ticks")
    log = tmp_path / "watcher.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bcx.cli", "watcher", "--config",
             str(write_config(tmp_path, second_redis.url))], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        # Both threads meet READONLY on their first write and back off, still running.
        wait_for(lambda: log.read_text().count("Redis unavailable") >= 2, timeout=30,
                 message="the watcher backing off from the read-only replica")
        assert process.poll() is None, log.read_text()[-2000:]
        assert not replica.exists(keys.watermark("kraken", "BTC-USD"))
        replica.replicaof("NO", "ONE")  # the failover: this node takes writes now
        wait_for(lambda: replica.exists(keys.rollup("kraken", "BTC-USD", "price", 60),
                                        keys.heartbeat(HISTORY), keys.heartbeat(RULES)) == 3,
                 timeout=30, message="roll-ups and heartbeats on the promoted node")
        assert not r.exists(keys.rollup("kraken", "BTC-USD", "price", 60))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()[-2000:]
        assert "Traceback" not in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        replica.close()
