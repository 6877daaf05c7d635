"""Component heartbeats: a hash with a TTL per component, and reading them back for health."""

from __future__ import annotations

import os
import socket
from typing import Any

import redis

from bcx import sdnotify
from bcx.keys import Keys
from bcx.timeutil import now_ms


class Heartbeat:
    """``beat()`` refreshes the component's key (and its TTL); ``clear()`` removes it on a
    clean shutdown so a stopped component reads as down at once, not after the TTL."""

    def __init__(self, connection: redis.Redis, keys: Keys, component: str, ttl: float):
        self.connection = connection
        self.keys = keys
        self.component = component
        self.ttl_ms = max(1000, int(ttl * 1000))

    def beat(self, **info: Any) -> None:
        key = self.keys.heartbeat(self.component)
        fields = {"time": now_ms(), "pid": os.getpid(), "host": socket.gethostname(),
                  "ttl_ms": self.ttl_ms}
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
