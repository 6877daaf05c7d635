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
from collections.abc import Iterable
from typing import Any

import redis

from bcx import sdnotify
from bcx.keys import Keys
from bcx.store.heartbeats import DEGRADED, DEGRADED_SINCE, Heartbeats
from bcx.timeutil import now_ms

RESTARTING = "restarting"  # the problem source of a thread restarting after a crash
REASON_MAX = 300
# Components that do not say how often they beat beat every third of their TTL (at most
# every 0.5 s), as the watcher, server and web app do.
MIN_DEFAULT_INTERVAL_MS = 500


TRACKER = "tracker"


def tracker_component(instance: str = "") -> str:
    """The heartbeat name of tracker ``instance``: ``tracker``, or ``tracker.NAME`` so that
    ``--component tracker`` covers every instance."""
    return f"{TRACKER}.{instance}" if instance else TRACKER


def tracker_instances(components: Iterable[str]) -> list[str]:
    """The tracker instances among component names ("" for the unnamed one), sorted."""
    return sorted({name[len(TRACKER) + 1:] if name != TRACKER else "" for name in components
                   if name == TRACKER or name.startswith(TRACKER + ".")})


def reason(exc: BaseException) -> str:
    """An exception as a short degraded reason: its message, else its type."""
    return str(exc) or type(exc).__name__


class Heartbeat:
    """``beat()`` refreshes the component's key (and its TTL); ``clear()`` removes it on a
    clean shutdown so a stopped component reads as down at once, not after the TTL.

    ``degrade(source, reason)`` and ``recover(source)`` track the component's problems by
    source (a job, a restart); every beat writes them, joined, as ``degraded``. The Redis
    side is :class:`bcx.store.heartbeats.Heartbeats`: pass the process's one with
    :meth:`on`, or a client and key schema to build one."""

    def __init__(self, connection: redis.Redis, keys: Keys | None, component: str, ttl: float,
                 interval: float | None = None, *, store: Heartbeats | None = None):
        self.store = store or Heartbeats(connection, keys)
        self.component = component
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.interval_ms = (max(1, int(interval * 1000)) if interval is not None
                            else max(MIN_DEFAULT_INTERVAL_MS, self.ttl_ms // 3))
        self._problems: dict[str, tuple[str, int]] = {}  # source -> (reason, since ms)
        self._lock = threading.Lock()

    @classmethod
    def on(cls, store: Heartbeats, component: str, ttl: float,
           interval: float | None = None) -> Heartbeat:
        return cls(store.connection, store.keys, component, ttl, interval, store=store)

    @property
    def connection(self) -> redis.Redis:
        return self.store.connection

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
        why, since = self.degraded()
        fields: dict[str, Any] = {"time": now_ms(), "pid": os.getpid(),
                                  "host": socket.gethostname(), "ttl_ms": self.ttl_ms,
                                  "interval_ms": self.interval_ms, DEGRADED: why}
        if since is not None:
            fields[DEGRADED_SINCE] = since
        fields.update({name: str(value) for name, value in info.items()})
        self.store.beat(self.component, fields, self.ttl_ms)
        sdnotify.alive()  # only a beat that reached Redis counts for systemd's watchdog

    def clear(self) -> None:
        self.store.clear(self.component)


def read_all(connection: redis.Redis, keys: Keys) -> dict[str, dict[str, Any] | None]:
    """Every component's heartbeat fields (see :meth:`Heartbeats.read_all`)."""
    return Heartbeats(connection, keys).read_all()
