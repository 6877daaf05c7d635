"""The series registry: the set of every ``exchange:symbol`` that was ever written, so readers
list series without SCAN. Written only when a series is new to this process."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

import redis

from bcx.keys import Keys, series_id, split_series_id
from bcx.store.base import Structure

# Names are registered again after this long, so a registry emptied by hand fills up again.
REREGISTER_S = 300.0


class SeriesRegistry(Structure):
    def __init__(self, connection: redis.Redis, keys: Keys | None = None):
        super().__init__(connection, keys)
        self._registered: set[str] = set()
        self._registered_at = time.monotonic()

    def add(self, names: Iterable[str], pipeline: Any | None = None) -> list[str]:
        """Queue SADD of the names this process has not registered yet; returns them. With a
        ``pipeline`` the caller calls :meth:`confirm` once it executed, so a failed round trip
        registers them again next time."""
        if time.monotonic() - self._registered_at > REREGISTER_S:
            self._registered.clear()
            self._registered_at = time.monotonic()
        new = sorted({name for name in names if name not in self._registered})
        if new:
            self._target(pipeline).sadd(self.keys.series, *new)
            if pipeline is None:
                self.confirm(new)
        return new

    def confirm(self, names: Iterable[str]) -> None:
        self._registered.update(names)

    def all(self) -> list[tuple[str, str]]:
        """Every known (exchange, symbol), sorted."""
        found = cast("set[str]", self.connection.smembers(self.keys.series))
        return sorted(split_series_id(item) for item in found)

    def contains(self, exchange: str, symbol: str) -> bool:
        return bool(self.connection.sismember(self.keys.series, series_id(exchange, symbol)))
