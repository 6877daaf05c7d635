"""Failover under ingest: a Redis Cluster master SIGKILLed, a Sentinel master failed over, while
a tracker streams a busy feed. With ``min-replicas-to-write 1`` no tick the tracker counted as
written is lost: every tick of the session is in Redis at the end, exactly once.

The feed is a generated Coinbase session (``bcx.demo``: the venue's exact frame format, event
times in the frames), so the expected members follow from the session file alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import exceptions as redis_errors

from bcx import demo
from bcx.config import RedisConfig
from bcx.events import TriggerEvent
from bcx.exchanges.common import iso_to_ms
from bcx.keys import Keys
from bcx.redisconn import from_config
from bcx.replay import ReplayServer
from bcx.store.events import EventStream
from bcx.ticks import member
from bcx.tracker.run import Tracker, tracker_client
from tests import trackerkit
from tests.cluster_support import RedisClusterDeployment, SentinelDeployment
from tests.support import wait_for

SAFE = ["min-replicas-to-write 1", "min-replicas-max-lag 10"]
KEYS = Keys("bcx")


def _session(tmp_path: Path) -> tuple[Path, dict[str, set[str]]]:
    """A 6 s session, 2 products x 150 frames/s, and the members each raw key must hold."""
    path = tmp_path / "coinbase.session.jsonl"
    lines = demo.session_lines(seconds=6, per_second=150, seed=11)
    path.write_text("\n".join(lines) + "\n")
    expected: dict[str, set[str]] = {}
    for line in lines:
        entry = json.loads(line)
        frame = json.loads(entry.get("raw", "{}"))
        if entry["dir"] != "recv" or frame.get("type") != "ticker":
            continue
        ms = iso_to_ms(frame["time"])
        for field, name in (("price", "price"), ("bid", "best_bid"), ("ask", "best_ask")):
            key = KEYS.raw("coinbase", frame["product_id"], field)
            expected.setdefault(key, set()).add(member(ms, frame[name]))
    return path, expected


def _tracker(tmp_path: Path, redis: RedisConfig, url: str) -> Tracker:
    config = trackerkit.tracker_config(tmp_path, redis.url, {"coinbase": (url, sorted(
        demo.PRODUCTS))}, max_clock_skew="5y")
    config = type(config)(**{**config.__dict__, "redis": redis})
    return Tracker(config, tracker_client(config))


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[callable]:
    running: list[tuple[Tracker, ReplayServer]] = []

    def start(redis: RedisConfig) -> tuple[Tracker, dict[str, set[str]]]:
        path, expected = _session(tmp_path)
        server = ReplayServer(path, speed=1)
        url = server.start()
        tracker = _tracker(tmp_path, redis, url)
        running.append((tracker, server))
        tracker.start()
        return tracker, expected

    yield start
    for tracker, server in running:
        tracker.stop()
        server.stop()


def _stored(client: object, expected: dict[str, set[str]]) -> dict[str, set[str]]:
    return {key: set(client.zrange(key, 0, -1)) for key in expected}  # type: ignore[attr-defined]


def _all_stored(client: object, expected: dict[str, set[str]]) -> bool:
    return _stored(client, expected) == expected


def _fail_over(cluster: RedisClusterDeployment, key: str) -> None:
    """SIGKILL the master serving ``key``, wait until a replica serves its slot, and restart
    the killed node (it rejoins as a replica, so min-replicas-to-write holds again)."""
    victim = cluster.master_of(key)
    victim.kill()
    survivor = next(node for node in cluster.nodes if node.running)

    def promoted() -> bool:
        client = survivor.client()
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for address, info in client.cluster("nodes").items():
                flags = info["flags"]
                serves = any(int(low) <= slot <= int(high) for low, high, *_ in info["slots"])
                if "master" in flags and "fail" not in flags and serves:
                    return int(address.rsplit(":", 1)[1].split("@")[0]) != victim.port
            return False
        finally:
            client.close()

    wait_for(promoted, timeout=30, message=f"a replica promoted for {key}")
    victim.start()


class Publisher(threading.Thread):
    """Publishes trigger events all along, retrying each through any outage, and keeps the
    ids of those Redis acknowledged."""

    def __init__(self, redis: RedisConfig):
        super().__init__(daemon=True)
        self.client = from_config(redis)
        self.stream = EventStream(self.client, KEYS)
        self.ids: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            event = TriggerEvent(rule=f"r{number}", series="coinbase:BTC-USD", state="firing",
                                 kind="above", value=1.0, threshold=1.0)
            try:
                self.stream.publish(event.to_json(), maxlen=100_000)
            except redis_errors.RedisError:
                self.stop.wait(0.05)
                continue
            self.ids.append(event.id)
            number += 1
            self.stop.wait(0.02)


def test_a_cluster_master_killed_during_ingest_loses_no_tick(tmp_path: Path,
                                                             ingest: callable) -> None:
    """SIGKILL the master of the busiest series, then the master of the event stream (when
    another), while a tracker ingests and a `bcx server` delivers: no tick lost, every event
    delivered at least once, the server never exits."""
    cluster = RedisClusterDeployment(tmp_path / "cluster", extra=SAFE)
    cluster.start()
    server: subprocess.Popen[bytes] | None = None
    publisher: Publisher | None = None
    try:
        redis = RedisConfig(url=cluster.url, mode="cluster", socket_timeout=1.0)
        log_path = tmp_path / "alerts.jsonl"
        conf = tmp_path / "server.conf"
        conf.write_text(f"[redis]\nurl = {cluster.url}\nmode = cluster\nsocket_timeout = 1s\n"
                        f"[server]\nnotifiers = log\nlog_path = {log_path}\nclaim_idle = 1s\n")
        with (tmp_path / "server.log").open("wb") as out:
            server = subprocess.Popen([sys.executable, "-m", "bcx.cli", "server", "--config",
                                       str(conf)], stdout=out, stderr=subprocess.STDOUT)
        publisher = Publisher(redis)
        publisher.start()
        tracker, expected = ingest(redis)
        busy = KEYS.raw("coinbase", "BTC-USD", "price")
        reader = from_config(redis)
        wait_for(lambda: reader.zcard(busy) >= 150, timeout=20, message="ingest under way")
        _fail_over(cluster, busy)
        if cluster.master_of(KEYS.events_stream).port != cluster.master_of(busy).port:
            # Then the event stream's master: a second failover right after the first, while
            # the clients' slot maps are still settling (MOVED must be waited out, not fatal).
            _fail_over(cluster, KEYS.events_stream)
        wait_for(lambda: _all_stored(reader, expected), timeout=60,
                 message="every tick of the session stored")
        assert tracker.stop()
        assert _stored(reader, expected) == expected
        publisher.stop.set()
        publisher.join(10)
        published = set(publisher.ids)
        assert len(published) > 10

        def delivered() -> set[str]:
            lines = log_path.read_text().splitlines() if log_path.exists() else []
            return {json.loads(line)["id"] for line in lines if line.strip()}

        wait_for(lambda: delivered() >= published, timeout=60,
                 message="every published event delivered")
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        reader.close()
    finally:
        if publisher is not None:
            publisher.stop.set()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        cluster.stop()


def test_a_sentinel_failover_during_ingest_loses_no_tick(tmp_path: Path,
                                                         ingest: callable) -> None:
    deployment = SentinelDeployment(tmp_path / "sentinel", extra=SAFE)
    deployment.start()
    try:
        redis = RedisConfig(mode="sentinel", sentinels=tuple(deployment.addresses),
                            sentinel_master=deployment.name, socket_timeout=1.0)
        tracker, expected = ingest(redis)
        busy = KEYS.raw("coinbase", "BTC-USD", "price")
        reader = from_config(redis)
        wait_for(lambda: reader.zcard(busy) >= 150, timeout=20, message="ingest under way")
        old = deployment.current_master_port()
        new = deployment.failover()
        assert new != old
        wait_for(lambda: _all_stored(reader, expected), timeout=60,
                 message="every tick of the session stored")
        assert tracker.stop()
        promoted = deployment.node_on(new).client()
        assert _stored(promoted, expected) == expected
        promoted.close()
        reader.close()
    finally:
        deployment.stop()
