"""What every Redis structure class shares: the client it was handed and the key schema, and
the habit that each write can join a caller's pipeline."""

from __future__ import annotations

from typing import Any

import redis

from bcx.keys import Keys


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
