"""The one client factory every process uses: a standalone server, a Redis Cluster or a master
found through Sentinel, from ``[redis]`` (``mode``, ``url``, ``sentinels``, ``sentinel_master``).

Every client decodes responses to ``str`` and connects lazily, so a component can start before
Redis does and wait it out like any other outage.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.connection import HiredisRespSerializer
from redis.exceptions import AskError, CrossSlotTransactionError, RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from bcx.config import RedisConfig
from bcx.store.errors import reply


def connect(url: str, *, socket_timeout: float = 5.0, client_name: str | None = None
            ) -> redis.Redis:
    """A client for ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs, password and db
    included. Responses are decoded to ``str``; connections are made lazily."""
    return redis.Redis.from_url(url, **_options(socket_timeout, client_name), **_PACKING)


def from_config(config: RedisConfig, client_name: str | None = None) -> Any:
    """The client of the configured mode. Its commands are those of ``redis.Redis``; a cluster
    client routes each key to its node, a Sentinel client follows the current master."""
    if config.mode == "cluster":
        return LazyCluster(lambda: RedisCluster.from_url(
            config.url, **_options(config.socket_timeout, client_name),
            connection_class=_PackingConnection))
    if config.mode == "sentinel":
        return sentinel_master(config, client_name)
    return connect(config.url, socket_timeout=config.socket_timeout, client_name=client_name)


def sentinel_master(config: RedisConfig, client_name: str | None = None) -> redis.Redis:
    """A client of the master the Sentinels name ``sentinel_master``. Each new connection asks
    the Sentinels where the master is; a connection to a demoted master (READONLY) is dropped,
    so the next command reaches the new one."""
    parts = urlsplit(config.url)
    query = parse_qs(parts.query)
    master_options: dict[str, Any] = {
        "password": unquote(parts.password) if parts.password else None,
        "username": unquote(parts.username) if parts.username else None,
        "db": int(parts.path.strip("/") or query.get("db", ["0"])[0]),
        "ssl": parts.scheme == "rediss",
    }
    sentinel_options: dict[str, Any] = {
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_timeout,
        "password": config.sentinel_password or None,
        "ssl": config.sentinel_tls,
        "decode_responses": True,
    }
    addresses = []
    for address in config.sentinels:
        host, _, port = address.rpartition(":")
        addresses.append((host.strip("[]"), int(port)))
    manager = Sentinel(addresses, sentinel_kwargs=sentinel_options,
                       socket_timeout=config.socket_timeout)
    master: redis.Redis = manager.master_for(
        config.sentinel_master, **_options(config.socket_timeout, client_name), **master_options,
        **_PACKING)
    return master


def _options(socket_timeout: float, client_name: str | None) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": 30,
        "client_name": client_name,
    }


class _Packer(HiredisRespSerializer):
    """redis-py's hiredis command packer without its Python pass over every argument (only
    for ``bytearray``, which hiredis refuses; it packs everything else, memoryview
    included, exactly as that pass would leave it). The tracker packs a few values per tick,
    and that pass was a tenth of its budget. Commands written as one string with spaces
    (``"CLIENT SETNAME"``) and refused arguments go the library's own way."""

    def pack(self, *args: Any) -> list[bytes]:
        command = args[0]
        if isinstance(command, str) and " " not in command:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass
        return cast("list[bytes]", super().pack(*args))


# Every client's connections pack with _Packer: redis-py's ``command_packer`` connection option,
# which the cluster client does not pass on to its nodes, so they get it from their connection
# class (a ``rediss://`` URL gives them redis-py's TLS class, which packs the library's way).
# hiredis is a pinned requirement, as redis-py's reply parser too.
_PACKER = _Packer()
_PACKING: dict[str, Any] = {"command_packer": _PACKER}


class _PackingConnection(redis.Connection):
    """A TCP connection packing with :class:`_Packer` (the cluster client's nodes)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("command_packer", _PACKER)
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated


def _translated(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` raising redis-py's cluster-client exceptions, which are not ``RedisError``s
    (no node serves a slot during a failover, a node table being rebuilt), as the Redis
    errors every component already waits out: a connection error, or CROSSSLOT for a
    transaction spanning slots, which is a bug to report, not to retry."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CrossSlotTransactionError as exc:
            raise redis.ResponseError(f"CROSSSLOT {exc}") from exc
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc
        except redis.ResponseError as exc:
            # MOVED or ASK reaching us through a cluster client means the slot map is being
            # rebuilt (a failover, a resharding): a moment to wait out, not the
            # misconfiguration it is for a standalone client.
            if isinstance(exc, AskError) or reply(exc).startswith(("MOVED", "ASK")):
                raise redis.ConnectionError(f"Redis Cluster topology changing: {exc}") from exc
            raise

    return call


class _ClusterPipeline:
    """A cluster pipeline whose ``execute`` raises Redis errors only (see _translated)."""

    def __init__(self, pipe: Any):
        self._pipe = pipe

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._pipe, name)
        return _translated(found) if name == "execute" else found

    def __enter__(self) -> _ClusterPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pipe.reset()


class LazyCluster:
    """A ``RedisCluster`` built on first use. redis-py's cluster client asks a node for the slot
    map when it is constructed; built lazily, a component starting before its cluster sees an
    ordinary connection error on its first command and retries like after any outage."""

    def __init__(self, build: Callable[[], RedisCluster]):
        self._build = build
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()
        self._retry: Retry | None = None

    @property
    def client(self) -> RedisCluster:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        client = self._build()
                    except RedisClusterException as exc:
                        raise redis.ConnectionError(f"no Redis Cluster node answered: {exc}"
                                                    ) from exc
                    if self._retry is not None:
                        client.set_retry(self._retry)
                    self._client = client
        return self._client

    def set_retry(self, retry: Retry) -> None:
        """Applied when the client is built (or at once if it is)."""
        self._retry = retry
        if self._client is not None:
            self._client.set_retry(retry)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.client, name)
        if not callable(found):
            return found
        if name == "pipeline":
            method: Any = lambda *args, **kwargs: _ClusterPipeline(found(*args, **kwargs))  # noqa: E731
        else:
            method = _translated(found)
        # Kept on the instance: later calls find it without building the wrapper again.
        self.__dict__[name] = method
        return method

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
