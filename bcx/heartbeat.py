"""Component heartbeats: a hash with a TTL per component, and reading them back for health."""

from __future__ import annotations

import os
import socket
from typing import Any

import redis

from bcx import sdnotify
from bcx.keys import Keys
from bcx.timeutil import now_ms

# Components that do not say how often they beat beat every third of their TTL (at most
# every 0.5 s), as the watcher, server and web app do.
MIN_DEFAULT_INTERVAL_MS = 500


class Heartbeat:
    """``beat()`` refreshes the component's key (and its TTL); ``clear()`` removes it on a
    clean shutdown so a stopped component reads as down at once, not after the TTL.

    The hash carries ``interval_ms``, how often the component means to beat, so a reader can
    tell a late beat from a live one long before the TTL expires."""

    def __init__(self, connection: redis.Redis, keys: Keys, component: str, ttl: float,
                 interval: float | None = None):
        self.connection = connection
        self.keys = keys
        self.component = component
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.interval_ms = (max(1, int(interval * 1000)) if interval is not None
                            else max(MIN_DEFAULT_INTERVAL_MS, self.ttl_ms // 3))

    def beat(self, **info: Any) -> None:
        key = self.keys.heartbeat(self.component)
        fields = {"time": now_ms(), "pid": os.getpid(), "host": socket.gethostname(),
                  "ttl_ms": self.ttl_ms, "interval_ms": self.interval_ms}
        fields.update({name: str(value) for name, value in info.items()})
        pipe = self.connection.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, self.ttl_ms)
        pipe.sadd(self.keys.components, self.component)
        pipe.execute()
        sdnotify.alive()  # only a beat that reached Redis counts for systemd's watchdog

    def clear(self) -> None:
        self.connection.delete(self.keys.heartbeat(self.component))


def read_all(connection: redis.Redis, keys: Keys) -> dict[str, dict[str, Any] | None]:
    """Every component that ever beat, mapped to its heartbeat fields (None when expired or
    cleared, meaning down). ``age_s`` is added: how long ago the key's TTL was last renewed,
    read from Redis's own clock (``ttl_ms`` minus PTTL), so a reader whose clock differs from
    the component's host still sees the true age; the beat's ``time`` is the fallback."""
    names = sorted(connection.smembers(keys.components))
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.heartbeat(name))
        pipe.pttl(keys.heartbeat(name))
    replies = pipe.execute()
    out: dict[str, dict[str, Any] | None] = {}
    now = now_ms()
    for name, fields, pttl in zip(names, replies[::2], replies[1::2], strict=True):
        if not fields:
            out[name] = None
            continue
        beat: dict[str, Any] = dict(fields)
        ttl_ms = _int(fields.get("ttl_ms"))
        if ttl_ms is not None and pttl >= 0:
            age_ms = ttl_ms - pttl
        else:
            age_ms = now - (_int(fields.get("time")) or now)
        beat["age_s"] = round(max(0, age_ms) / 1000, 3)
        out[name] = beat
    return out


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
