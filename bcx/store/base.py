"""What every Redis structure class shares: the client it was handed and the key schema, and
the habit that each write can join a caller's pipeline."""

from __future__ import annotations

from typing import Any, cast

import redis

from bcx.keys import Keys
from bcx.ticks import score


class Structure:
    """Base of the store classes: ``connection`` is the process's one client (standalone,
    cluster or Sentinel master), ``keys`` the key schema."""

    def __init__(self, connection: redis.Redis, keys: Keys | None = None):
        self.connection = connection
        self.keys = keys or Keys()

    def _target(self, pipeline: Any | None) -> Any:
        """Where a write goes: the caller's pipeline if it passed one, else the client."""
        return pipeline if pipeline is not None else self.connection

    def pipeline(self, transaction: bool = False) -> Any:
        """A pipeline of this store's client, for callers that join several writes."""
        return self.connection.pipeline(transaction=transaction)

    def _by_time(self, key: str, start_ms: int | None, end_ms: int | None, limit: int | None,
                 newest_first: bool) -> list[str]:
        """Members of a time-scored sorted set with ``start_ms <= time <= end_ms`` (open ends
        when None), oldest first unless ``newest_first``, at most ``limit``."""
        low = "-inf" if start_ms is None else score(start_ms)
        high = "+inf" if end_ms is None else score(end_ms)
        start, num = (0, limit) if limit is not None else (None, None)
        if newest_first:
            found = self.connection.zrevrangebyscore(key, high, low, start, num)
        else:
            found = self.connection.zrangebyscore(key, low, high, start, num)
        return cast("list[str]", found)
