"""Component heartbeats: a hash with a TTL per component, and reading them back for health.

A component that is alive but whose work keeps failing says so in its heartbeat: ``degraded``
holds the reason (the last error; empty when healthy) and ``degraded_since_ms`` when it began.
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


def reason(exc: BaseException) -> str:
    """An exception as a short degraded reason: its message, else its type."""
    return str(exc) or type(exc).__name__


class Heartbeat:
    """``beat()`` refreshes the component's key (and its TTL); ``clear()`` removes it on a
    clean shutdown so a stopped component reads as down at once, not after the TTL.

    ``degrade(source, reason)`` and ``recover(source)`` track the component's problems by
    source (a job, a restart); every beat writes them, joined, as ``degraded``."""

    def __init__(self, connection: redis.Redis, keys: Keys, component: str, ttl: float):
        self.connection = connection
        self.keys = keys
        self.component = component
        self.ttl_ms = max(1000, int(ttl * 1000))
        self._problems: dict[str, tuple[str, int]] = {}  # source -> (reason, since ms)
        self._lock = threading.Lock()

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
                  "ttl_ms": self.ttl_ms, DEGRADED: why}
        fields.update({name: str(value) for name, value in info.items()})
        pipe = self.connection.pipeline(transaction=True)
        if since is None:
            pipe.hdel(key, DEGRADED_SINCE)
        else:
            fields[DEGRADED_SINCE] = since
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, self.ttl_ms)
        pipe.sadd(self.keys.components, self.component)
        pipe.execute()
        sdnotify.alive()  # only a beat that reached Redis counts for systemd's watchdog

    def clear(self) -> None:
        self.connection.delete(self.keys.heartbeat(self.component))


def read_all(connection: redis.Redis, keys: Keys) -> dict[str, dict[str, Any] | None]:
    """Every component that ever beat, mapped to its heartbeat fields (None when expired or
    cleared, meaning down). ``age_s`` is added from the beat's time."""
    names = sorted(connection.smembers(keys.components))
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.heartbeat(name))
    out: dict[str, dict[str, Any] | None] = {}
    now = now_ms()
    for name, fields in zip(names, pipe.execute(), strict=True):
        if not fields:
            out[name] = None
            continue
        beat: dict[str, Any] = dict(fields)
        beat["age_s"] = round(max(0, now - int(fields.get("time", now))) / 1000, 3)
        out[name] = beat
    return out
