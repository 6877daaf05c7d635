"""Every Redis structure BCX keeps, one module each; the only code that issues Redis commands.

``ticks``: raw ticks and latest values. ``registry``: the set of known series.
``heartbeats``: component heartbeats. ``trackerstats``: the tracker's feed stats and gaps.
``errors``: which Redis errors are waited out and which stop a component with the setting to
fix. :class:`Stores` bundles one instance of each for a process.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bcx.keys import Keys
from bcx.store.heartbeats import Heartbeats
from bcx.store.registry import SeriesRegistry
from bcx.store.ticks import FIELDS, Store, TickStore
from bcx.store.trackerstats import TrackerStats

# The other structures' imports go here (rollups, rules, events, alerts, channels).

__all__ = ["FIELDS", "Heartbeats", "SeriesRegistry", "Store", "Stores", "TickStore",
           "TrackerStats"]


@dataclass(frozen=True)
class Stores:
    """One instance of each structure, built once per process by :meth:`open`."""

    connection: redis.Redis
    keys: Keys
    ticks: TickStore
    registry: SeriesRegistry
    heartbeats: Heartbeats
    tracker_stats: TrackerStats
    # rollups, rules, events, alerts, channels: added by their owners, one line each.

    @classmethod
    def open(cls, connection: redis.Redis, keys: Keys | None = None,
             publish_ticks: bool = False, tracker_instance: str = "") -> Stores:
        keys = keys or Keys()
        registry = SeriesRegistry(connection, keys)
        return cls(
            connection=connection,
            keys=keys,
            ticks=TickStore(connection, keys, publish_ticks=publish_ticks, registry=registry),
            registry=registry,
            heartbeats=Heartbeats(connection, keys),
            tracker_stats=TrackerStats(connection, keys, instance=tracker_instance),
            # rollups=..., rules=..., events=..., alerts=..., channels=...: one line each.
        )
