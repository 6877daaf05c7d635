"""`[redis] mode`: one client factory for a standalone server, a Redis Cluster and a master
behind Sentinel, the settings each mode needs, and which Redis errors are waited out."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bcx import config
from bcx.config import RedisConfig
from bcx.keys import Keys
from bcx.redisconn import LazyCluster, from_config
from bcx.store import Store
from bcx.store.errors import advice, is_transient
from bcx.ticks import Tick
from tests.cluster_support import RedisClusterDeployment, SentinelDeployment
from tests.support import RedisServer, free_port, wait_for


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "bcx.conf"
    path.write_text(text)
    return config.load(str(path), env=env or {})


def test_mode_comes_from_the_environment(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "[redis]\nurl = redis://127.0.0.1:7000/0\n",
                env={"BCX_REDIS_MODE": "cluster"})
    assert cfg.redis.mode == "cluster"


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("[redis]\nmode = sentinel\nsentinel_master = m\n", "sentinels", "at least one HOST:PORT"),
    ("[redis]\nmode = sentinel\nsentinels = 127.0.0.1:26379\n", "sentinel_master",
     "the master's name"),
    ("[redis]\nmode = sentinel\nsentinels = 127.0.0.1\nsentinel_master = m\n", "sentinels",
     "HOST:PORT"),
    ("[redis]\nmode = cluster\nurl = redis://127.0.0.1:7000/2\n", "url", "database 0"),
    ("[redis]\nmode = cluster\nurl = unix:///run/redis.sock\n", "url", "redis:// or rediss://"),
    ("[redis]\nmode = replicated\n", "mode", "standalone, cluster, sentinel"),
])
def test_each_mode_checks_its_settings(tmp_path: Path, text: str, key: str,
                                       expected: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert f"[redis] {key}" in message and expected in message


def test_a_cluster_url_password_is_not_echoed_in_its_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as caught:
        _load(tmp_path, "[redis]\nmode = cluster\nurl = redis://:hunter2@127.0.0.1:7000/3\n")
    assert "hunter2" not in str(caught.value)


def test_cluster_client_routes_every_series_to_its_node(cluster_url: str,
                                                         redis_cluster: RedisClusterDeployment
                                                         ) -> None:
    client = from_config(RedisConfig(url=cluster_url, mode="cluster"))
    store = Store(client, Keys("bcx"), publish_ticks=True)
    series = [("coinbase", f"S{index}-USD") for index in range(30)]
    store.write([Tick(exchange, symbol, 1_700_000_000_000 + index, price=str(index + 1))
                 for index, (exchange, symbol) in enumerate(series)])
    assert store.series() == sorted(series)
    assert store.latest("coinbase", "S7-USD")["price"] == "8"
    # The 30 series spread over more than one master: the client did not write to one node.
    owners = {redis_cluster.master_of(Keys("bcx").raw(e, s, "price")).port for e, s in series}
    assert len(owners) > 1
    client.close()


def test_a_cluster_that_is_not_up_yet_is_an_ordinary_connection_error() -> None:
    client = from_config(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", mode="cluster",
                                     socket_timeout=0.5))
    assert isinstance(client, LazyCluster)
    with pytest.raises(redis.ConnectionError) as caught:
        client.ping()
    assert is_transient(caught.value)


def test_sentinel_client_follows_the_master_through_a_failover(
        sentinel_deployment: SentinelDeployment) -> None:
    client = from_config(RedisConfig(mode="sentinel", sentinels=tuple(
        sentinel_deployment.addresses), sentinel_master=sentinel_deployment.name))
    client.set("bcx:probe", "before")
    first = sentinel_deployment.current_master_port()
    second = sentinel_deployment.failover()
    assert second != first

    def written() -> bool:
        try:
            client.set("bcx:probe", "after")
        except redis.RedisError as exc:
            assert is_transient(exc), exc
            return False
        return True

    wait_for(written, timeout=20, message="a write to the new master")
    promoted = sentinel_deployment.node_on(second).client()
    assert promoted.get("bcx:probe") == "after"
    promoted.close()
    client.close()


def test_a_standalone_client_on_a_cluster_node_is_told_to_set_mode_cluster(
        cluster_url: str, redis_cluster: RedisClusterDeployment) -> None:
    client = from_config(RedisConfig(url=cluster_url))
    errors = []
    for index in range(20):  # some keys hash to another node's slots
        try:
            client.set(f"bcx:probe:{index}", "x")
        except redis.RedisError as exc:
            errors.append(exc)
    assert errors
    assert not is_transient(errors[0])
    assert "mode = cluster" in (advice(errors[0]) or "")
    client.close()


def test_wrong_password_and_wrong_type_name_the_setting(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auth")
    server.start()
    try:
        admin = server.client()
        admin.config_set("requirepass", "right")
        wrong = from_config(RedisConfig(url=f"redis://:wrong@127.0.0.1:{server.port}/0"))
        with pytest.raises(redis.RedisError) as caught:
            wrong.ping()
        assert not is_transient(caught.value)
        assert "[redis] url" in (advice(caught.value) or "")
        none = from_config(RedisConfig(url=f"redis://127.0.0.1:{server.port}/0"))
        with pytest.raises(redis.RedisError) as caught:
            none.get("x")
        assert "[redis] url" in (advice(caught.value) or "")
        right = from_config(RedisConfig(url=f"redis://:right@127.0.0.1:{server.port}/0"))
        right.set("bcx:series", "not a set")
        with pytest.raises(redis.RedisError) as caught:
            right.sadd("bcx:series", "coinbase:BTC-USD")
        assert "prefix" in (advice(caught.value) or "")
        for client in (admin, wrong, none, right):
            client.close()
    finally:
        server.stop()


def test_a_replica_refusing_writes_and_missing_replicas_are_waited_out(tmp_path: Path) -> None:
    master = RedisServer(tmp_path / "master")
    master.start()
    replica = RedisServer(tmp_path / "replica")
    replica.start()
    try:
        to_replica = replica.client()
        to_replica.replicaof("127.0.0.1", master.port)
        with pytest.raises(redis.RedisError) as caught:
            to_replica.set("x", "1")
        assert is_transient(caught.value), caught.value  # READONLY
        to_master = master.client()
        to_master.config_set("min-replicas-to-write", "5")
        with pytest.raises(redis.RedisError) as caught:
            to_master.set("x", "1")
        assert is_transient(caught.value), caught.value  # NOREPLICAS
        assert advice(caught.value) is None
        to_replica.close()
        to_master.close()
    finally:
        replica.stop()
        master.stop()
