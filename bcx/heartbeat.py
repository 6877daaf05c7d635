"""Component heartbeats: a hash with a TTL per component, and reading them back for health.

A component that is alive but whose work keeps failing says so in its heartbeat: ``degraded``
holds the reason (the last error; empty when healthy) and ``degraded_since_ms`` when it began.
The hash also carries ``interval_ms``, how often the component means to beat, so a reader can
tell a late beat from a live one long before the TTL expires.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import redis

from bcx import sdnotify
from bcx.keys import Keys
from bcx.timeutil import now_ms

DEGRADED, DEGRADED_SINCE = "degraded", "degraded_since_ms"
RESTARTING = "restarting"  # the problem source of a thread restarting after a crash
REASON_MAX = 300
# Components that do not say how often they beat beat every third of their TTL (at most
# every 0.5 s), as the watcher, server and web app do.
MIN_DEFAULT_INTERVAL_MS = 500


def reason(exc: BaseException) -> str:
    """An exception as a short degraded reason: its message, else its type."""
    return str(exc) or type(exc).__name__


class Heartbeat:
    """``beat()`` refreshes the component's key (and its TTL); ``clear()`` removes it on a
    clean shutdown so a stopped component reads as down at once, not after the TTL.

    ``degrade(source, reason)`` and ``recover(source)`` track the component's problems by
    source (a job, a restart); every beat writes them, joined, as ``degraded``."""

    def __init__(self, connection: redis.Redis, keys: Keys, component: str, ttl: float,
                 interval: float | None = None):
        self.connection = connection
        self.keys = keys
        self.component = component
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.interval_ms = (max(1, int(interval * 1000)) if interval is not None
                            else max(MIN_DEFAULT_INTERVAL_MS, self.ttl_ms // 3))
        self._problems: dict[str, tuple[str, int]] = {}  # source -> (reason, since ms)
        self._lock = threading.Lock()
        self._registered = False

    def degrade(self, source: str, why: str) -> None:
        with self._lock:
            since = self._problems.get(source, ("", now_ms()))[1]
            self._problems[source] = (why, since)

    def recover(self, *sources: str) -> None:
        with self._lock:
            for source in sources:
                self._problems.pop(source, None)

    def degraded(self) -> tuple[str, int | None]:
        """(reason, since ms): ``("", None)`` when healthy."""
        with self._lock:
            if not self._problems:
                return "", None
            text = "; ".join(why for why, _ in self._problems.values())
            return text[:REASON_MAX], min(since for _, since in self._problems.values())

    def beat(self, **info: Any) -> None:
        key = self.keys.heartbeat(self.component)
        why, since = self.degraded()
        fields = {"time": now_ms(), "pid": os.getpid(), "host": socket.gethostname(),
                  "ttl_ms": self.ttl_ms, "interval_ms": self.interval_ms, DEGRADED: why}
        fields.update({name: str(value) for name, value in info.items()})
        # One key per transaction (Redis Cluster refuses a MULTI across slots); the registry
        # of component names is written apart, once per process.
        pipe = self.connection.pipeline(transaction=True)
        if since is None and not fields.get(DEGRADED):
            pipe.hdel(key, DEGRADED_SINCE)
        elif since is not None:
            fields[DEGRADED_SINCE] = since
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, self.ttl_ms)
        pipe.execute()
        if not self._registered:
            self.connection.sadd(self.keys.components, self.component)
            self._registered = True
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
