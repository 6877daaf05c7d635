"""Every Redis structure BCX keeps, one module each; the only code that issues Redis commands.

``ticks``: raw ticks and latest values. ``trades``: every trade. ``registry``: the set of
known series. ``rollups``: OHLC roll-ups and watermarks. ``rules``: stored rules and rule
states. ``events``: the durable event stream and its consumer group. ``alerts``: alert history
and dead letters. ``channels``: pub/sub. ``heartbeats``: component heartbeats.
``trackerstats``: the tracker's feed stats and gaps. ``errors``: which Redis errors are waited
out and which stop a component with the setting to fix. ``migrations``: key renames between
versions. :class:`Stores` bundles one instance of each for a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bcx.keys import Keys
from bcx.store.alerts import AlertLog
from bcx.store.channels import Channels
from bcx.store.events import EventStream
from bcx.store.heartbeats import Heartbeats
from bcx.store.registry import SeriesRegistry
from bcx.store.rollups import RollupStore
from bcx.store.rules import RuleStore
from bcx.store.ticks import FIELDS, Store, TickStore
from bcx.store.trackerstats import TrackerStats
from bcx.store.trades import TradeStore

__all__ = ["FIELDS", "AlertLog", "Channels", "EventStream", "Heartbeats", "RollupStore",
           "RuleStore", "SeriesRegistry", "Store", "Stores", "TickStore", "TrackerStats",
           "TradeStore"]


@dataclass(frozen=True)
class Stores:
    """One instance of each structure, built once per process by :meth:`open`."""

    connection: Any
    keys: Keys
    ticks: TickStore
    trades: TradeStore
    registry: SeriesRegistry
    rollups: RollupStore
    rules: RuleStore
    events: EventStream
    alerts: AlertLog
    channels: Channels
    heartbeats: Heartbeats
    tracker_stats: TrackerStats

    @classmethod
    def open(cls, connection: Any, keys: Keys | None = None, publish_ticks: bool = False,
             tracker_instance: str = "") -> Stores:
        keys = keys or Keys()
        registry = SeriesRegistry(connection, keys)
        trades = TradeStore(connection, keys)
        return cls(
            connection=connection,
            keys=keys,
            ticks=TickStore(connection, keys, publish_ticks=publish_ticks, registry=registry,
                            trades=trades),
            trades=trades,
            registry=registry,
            rollups=RollupStore(connection, keys),
            rules=RuleStore(connection, keys),
            events=EventStream(connection, keys),
            alerts=AlertLog(connection, keys),
            channels=Channels(connection, keys),
            heartbeats=Heartbeats(connection, keys),
            tracker_stats=TrackerStats(connection, keys, instance=tracker_instance),
        )
