"""Component heartbeats: one hash with a TTL per component, and the set of every component
name that ever beat (so health lists the components without SCAN)."""

from __future__ import annotations

from typing import Any, cast

import redis

from bcx.keys import Keys
from bcx.store.base import Structure
from bcx.timeutil import now_ms

DEGRADED, DEGRADED_SINCE = "degraded", "degraded_since_ms"


class Heartbeats(Structure):
    def __init__(self, connection: redis.Redis, keys: Keys | None = None):
        super().__init__(connection, keys)
        self._registered: set[str] = set()

    def beat(self, component: str, fields: dict[str, Any], ttl_ms: int) -> None:
        """Write ``fields`` into the component's hash and renew its TTL in one MULTI on that
        one key (Redis Cluster refuses a MULTI across slots). When ``fields`` carry no
        ``degraded`` reason the component is healthy: ``degraded_since_ms`` is removed. The
        name goes into the components set once per process (never in the MULTI: another
        slot)."""
        key = self.keys.heartbeat(component)
        pipe = self.connection.pipeline(transaction=True)
        if not fields.get(DEGRADED):
            fields = {name: value for name, value in fields.items() if name != DEGRADED_SINCE}
            pipe.hdel(key, DEGRADED_SINCE)
        # redis-py types hset's mapping invariant in its key: it refuses a dict[str, ...].
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.pexpire(key, ttl_ms)
        pipe.execute()
        if component not in self._registered:
            self.connection.sadd(self.keys.components, component)
            self._registered.add(component)

    def clear(self, component: str) -> None:
        """Remove the component's heartbeat: it reads as down at once, not after its TTL."""
        self.connection.delete(self.keys.heartbeat(component))

    def names(self) -> list[str]:
        """Every component that ever beat, sorted."""
        return sorted(cast("set[str]", self.connection.smembers(self.keys.components)))

    def read_all(self) -> dict[str, dict[str, Any] | None]:
        """Every component that ever beat, mapped to its heartbeat fields (None when expired
        or cleared, meaning down). ``age_s`` is added: how long ago the key's TTL was last
        renewed, read from Redis's own clock (``ttl_ms`` minus PTTL), so a reader whose clock
        differs from the component's host still sees the true age; the beat's ``time`` is the
        fallback."""
        names = self.names()
        pipe = self.connection.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.heartbeat(name))
            pipe.pttl(self.keys.heartbeat(name))
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
