"""Building the one Redis client a process uses, from any Redis URL."""

from __future__ import annotations

import redis

from bcx.config import RedisConfig


def connect(url: str, *, socket_timeout: float = 5.0, client_name: str | None = None
            ) -> redis.Redis:
    """A client for ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs, password and db
    included. Responses are decoded to ``str``; connections are made lazily."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        client_name=client_name,
    )


def from_config(config: RedisConfig, client_name: str | None = None) -> redis.Redis:
    return connect(config.url, socket_timeout=config.socket_timeout, client_name=client_name)
