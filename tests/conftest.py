"""Shared fixtures: one real redis-server per test session, flushed before each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.store import Store
from tests.cluster_support import Backend, RedisClusterDeployment, SentinelDeployment
from tests.support import RedisServer

DATA = Path(__file__).parent / "data"

# Fixture modules shared by several test files (the API's app, client and live server; the
# alert server's webhook receiver).
pytest_plugins = ["tests.api_support", "tests.server_support"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port. A missing binary fails the run; it never skips."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def r(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Any]:
    """A client of the emptied test Redis. In a module marked
    ``pytestmark = pytest.mark.usefixtures("backend")`` it is a client of the ``backend``
    (so each test runs on the standalone server and on the cluster)."""
    if "backend" in request.fixturenames:
        client = request.getfixturevalue("backend").client()
    else:
        client = redis_server.client()
        client.flushall()
    yield client
    client.close()


@pytest.fixture
def replay() -> Iterator[Callable[..., ReplayServer]]:
    """``replay(session, **options)``: a started :class:`ReplayServer` of a recording (its name
    in tests/data, e.g. ``"kraken_ticker"``, or a path), as fast as possible unless ``speed``
    says otherwise; every one is stopped at teardown."""
    servers: list[ReplayServer] = []

    def start(session: str | Path = "coinbase_ticker", **options: Any) -> ReplayServer:
        path = DATA / f"{session}.session.jsonl" if isinstance(session, str) else session
        options.setdefault("speed", 0)
        server = ReplayServer(path, **options)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def keys() -> Keys:
    return Keys("bcx")


@pytest.fixture
def store(r: redis.Redis, keys: Keys) -> Store:
    return Store(r, keys)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterDeployment]:
    """A real local Redis Cluster, 3 masters and 3 replicas, started once per test session
    (only by the tests that ask for it) and emptied by ``cluster_url``."""
    deployment = RedisClusterDeployment(tmp_path_factory.mktemp("cluster"))
    deployment.start()
    yield deployment
    deployment.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterDeployment) -> str:
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture
def sentinel_deployment(tmp_path: Path) -> Iterator[SentinelDeployment]:
    """1 master, 1 replica and 3 sentinels, new for each test: failover tests change roles."""
    deployment = SentinelDeployment(tmp_path / "sentinel")
    deployment.start()
    yield deployment
    deployment.stop()


@pytest.fixture(params=["standalone", "cluster"])
def backend(request: pytest.FixtureRequest, redis_server: RedisServer) -> Backend:
    """Each test that asks for it runs twice: on the standalone server and on the cluster,
    emptied first."""
    if request.param == "cluster":
        cluster: RedisClusterDeployment = request.getfixturevalue("redis_cluster")
        found = Backend("cluster", cluster.url, cluster)
    else:
        found = Backend("standalone", redis_server.url)
    found.flush()
    return found
