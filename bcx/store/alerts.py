"""The alert history and the dead-letter list: capped LISTs of JSON objects, newest first.

What the documents hold is ``bcx.server.history``'s business; this module stores and reads
them. Writes are queued on the caller's transaction (the one that acknowledges the event,
see :meth:`bcx.store.events.EventStream.ack_and_record`): both keys carry the ``{events}``
hash tag of the stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from bcx.keys import Keys

log = logging.getLogger(__name__)


def _time(item: dict[str, Any]) -> int:
    value = item.get("time")
    return value if isinstance(value, int) else -1


def _dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


class AlertLog:
    """The alert history (one document per handled event) and the dead-letter list (one per
    notifier failure or undecodable entry)."""

    def __init__(self, connection: redis.Redis, keys: Keys):
        self.connection = connection
        self.keys = keys

    def record(self, pipeline: redis.client.Pipeline, alert: dict[str, Any],
               letters: Sequence[dict[str, Any]], *, alerts_max: int,
               dead_letter_max: int) -> None:
        """Queue on ``pipeline`` an alert-history entry and its dead letters, each list
        trimmed to its cap."""
        pipeline.lpush(self.keys.alerts, _dumps(alert))
        pipeline.ltrim(self.keys.alerts, 0, alerts_max - 1)
        self._dead_letters(pipeline, letters, dead_letter_max)

    def record_undecodable(self, pipeline: redis.client.Pipeline, letter: dict[str, Any], *,
                           dead_letter_max: int) -> None:
        """Queue on ``pipeline`` the dead letter of an entry that holds no readable event."""
        self._dead_letters(pipeline, [letter], dead_letter_max)

    def _dead_letters(self, pipeline: redis.client.Pipeline,
                      letters: Sequence[dict[str, Any]], dead_letter_max: int) -> None:
        for letter in letters:
            pipeline.lpush(self.keys.dead_letter, _dumps(letter))
        if letters:
            pipeline.ltrim(self.keys.dead_letter, 0, dead_letter_max - 1)

    def recent_alerts(self, limit: int = 100, *, series: str | None = None,
                      rule: str | None = None, state: str | None = None,
                      since: int | None = None, scan: int = 0) -> list[dict[str, Any]]:
        """The ``limit`` most recently handled events, newest first. With filters, the
        ``scan`` newest entries (the list's cap) are read and those matching every filter
        kept: ``rule`` matches the rule's id or name, ``since`` the event time (ms)."""
        if series is None and rule is None and state is None and since is None:
            return self._read(self.keys.alerts, limit)
        found = []
        for item in self._read(self.keys.alerts, max(scan, limit)):
            if ((series is None or item.get("series") == series)
                    and (rule is None or rule in (item.get("rule"), item.get("name")))
                    and (state is None or item.get("state") == state)
                    and (since is None or _time(item) >= since)):
                found.append(item)
                if len(found) >= limit:
                    break
        return found

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The ``limit`` most recent notifier failures, newest first."""
        return self._read(self.keys.dead_letter, limit)

    def dead_letter_count(self) -> int:
        """How many dead letters the capped list holds."""
        return int(self.connection.llen(self.keys.dead_letter))

    def _read(self, key: str, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        out = []
        for text in self.connection.lrange(key, 0, limit - 1):
            try:
                item = json.loads(text)
            except ValueError:
                log.warning("skipping an unreadable entry in %s", key)
                continue
            if isinstance(item, dict):
                out.append(item)
        return out
