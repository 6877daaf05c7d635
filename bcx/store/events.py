"""The trigger-event stream: a capped Redis stream (the source of truth the alert server reads
through a consumer group) plus a pub/sub channel (the live path for the rules thread and the
web app's SSE stream).

Each entry holds one field, ``event``: the event's JSON. Acknowledging an entry and recording
it in the alert history happen in one transaction (:meth:`EventStream.ack_and_record`): the
stream, the alert history and the dead-letter list share the ``{events}`` hash tag, so the
transaction stays in one Redis Cluster slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import redis

from bcx.keys import Keys

Entry = tuple[str, "dict[str, str] | None"]  # (entry id, fields; None once trimmed)


class EventStream:
    """The event stream and its live channel."""

    def __init__(self, connection: redis.Redis, keys: Keys):
        self.connection = connection
        self.keys = keys
        self.stream = keys.events_stream
        self.channel = keys.events_channel

    # ------------------------------------------------------------------ producers
    def publish(self, payload: str, maxlen: int) -> str:
        """XADD to the capped stream, then PUBLISH; returns the stream entry id. Not one
        transaction (nor one pipeline): Redis Cluster refuses PUBLISH inside one. An error
        between the two leaves the event in the stream, so the server still delivers it; only
        live viewers miss it."""
        entry_id = self.connection.xadd(self.stream, {"event": payload}, maxlen=maxlen,
                                        approximate=True)
        self.connection.publish(self.channel, payload)
        return str(entry_id)

    def recent_reports(self, count: int) -> list[str]:
        """The ``event`` field of the last ``count`` entries, oldest first (the rules thread
        reads them at start to learn which feeds the tracker last reported down)."""
        entries = cast("list[tuple[str, dict[str, str] | None]]",
                       self.connection.xrevrange(self.stream, count=count))
        return [(fields or {}).get("event", "") for _, fields in reversed(entries)]

    # ------------------------------------------------------------------ consumer group
    def ensure_group(self, group: str) -> bool:
        """Create ``group`` at id 0 (a first start delivers everything already in the stream)
        together with the stream; True when created, False when it existed (kept as is)."""
        try:
            self.connection.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    def read_pending(self, group: str, consumer: str, after: str = "0", count: int = 50
                     ) -> list[Entry]:
        """Entries ``consumer`` read but never acknowledged, after id ``after``."""
        return _entries(self.connection.xreadgroup(group, consumer, {self.stream: after},
                                                   count=count))

    def read_new(self, group: str, consumer: str, count: int = 1, block_ms: int = 1000
                 ) -> list[Entry]:
        """Up to ``count`` entries never delivered to the group, waiting up to ``block_ms``."""
        return _entries(self.connection.xreadgroup(group, consumer, {self.stream: ">"},
                                                   count=count, block=block_ms))

    def autoclaim(self, group: str, consumer: str, idle_ms: int, start: str = "0-0",
                  count: int = 10) -> tuple[str, list[Entry], list[str]]:
        """XAUTOCLAIM: (next cursor, "0-0" at the end; entries claimed; ids of pending
        entries the stream trimmed, which Redis removed from the pending list)."""
        reply = self.connection.xautoclaim(self.stream, group, consumer, idle_ms,
                                           start_id=start, count=count)
        deleted = list(reply[2]) if len(reply) > 2 else []
        return str(reply[0]), list(reply[1]), deleted

    def consumers(self, group: str) -> list[dict[str, Any]]:
        """The group's consumers: ``name``, ``pending`` and ``idle`` (ms) each."""
        return list(self.connection.xinfo_consumers(self.stream, group))

    def delconsumer(self, group: str, consumer: str) -> None:
        self.connection.xgroup_delconsumer(self.stream, group, consumer)

    def pending_count(self, group: str) -> int:
        """How many entries the group has delivered but not acknowledged."""
        return int(self.connection.xpending(self.stream, group)["pending"])

    def group_info(self, group: str) -> dict[str, Any] | None:
        """The group's ``pending`` (delivered, not acknowledged) and ``lag`` (not delivered
        yet; None when Redis cannot tell) counts, or None when the group or stream is
        missing."""
        try:
            groups = self.connection.xinfo_groups(self.stream)
        except redis.ResponseError:
            return None  # no stream yet
        for found in groups:
            if found.get("name") == group:
                return {"pending": int(found.get("pending") or 0), "lag": found.get("lag")}
        return None

    def ack_and_record(self, group: str, entry_id: str,
                       queue: Callable[[redis.client.Pipeline], None]) -> None:
        """One MULTI: whatever ``queue`` adds to the transaction (the alert history's
        records, all on ``{events}`` keys), then XACK of ``entry_id``."""
        pipe = self.connection.pipeline(transaction=True)
        queue(pipe)
        pipe.xack(self.stream, group, entry_id)
        pipe.execute()


def _entries(reply: Any) -> list[Entry]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3 shape
        return [entry for entries in reply.values() for entry in entries[0]]
    return [entry for _stream, entries in reply for entry in entries]
