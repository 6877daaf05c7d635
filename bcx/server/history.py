"""The alert history and the dead-letter list: how handled events are recorded in Redis and
read back (the web API's ``/api/v1.0/alerts`` reads through :func:`recent_alerts`).

Both are capped LISTs, newest first, of JSON objects. An alert is the event's own fields plus
``delivery``::

    {"id": "…", "rule": "…", "series": "…", "state": "firing", …,
     "delivery": {"entry": "<stream id>", "time": <ms>, "consumer": "…",
                  "notifiers": {"log": "ok", "webhook": "failed: HTTP 503"}}}

A dead letter is one notifier's failure on one event: the event's fields plus ``failure``
(``notifier``, ``error``, ``attempts``, ``time``, ``entry``, ``consumer``). An entry whose
event could not be decoded is dead-lettered with ``raw`` (the stream fields) instead of the
event's fields and ``notifier`` "decode".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from bcx.keys import Keys
from bcx.timeutil import now_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one notifier did with one event."""

    notifier: str
    ok: bool
    error: str = ""
    attempts: int = 1

    def summary(self) -> str:
        return "ok" if self.ok else f"failed: {self.error}"


def record(pipe: redis.client.Pipeline, keys: Keys, *, event: dict[str, Any], entry: str,
           consumer: str, outcomes: list[Outcome], alerts_max: int,
           dead_letter_max: int) -> None:
    """Queue on ``pipe`` the alert-history entry of a handled event and one dead letter per
    notifier that gave up, each list trimmed to its cap."""
    time = now_ms()
    alert = dict(event, delivery={"entry": entry, "time": time, "consumer": consumer,
                                  "notifiers": {o.notifier: o.summary() for o in outcomes}})
    pipe.lpush(keys.alerts, json.dumps(alert, separators=(",", ":")))
    pipe.ltrim(keys.alerts, 0, alerts_max - 1)
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        letter = dict(event, failure={"notifier": outcome.notifier, "error": outcome.error,
                                      "attempts": outcome.attempts, "time": time,
                                      "entry": entry, "consumer": consumer})
        pipe.lpush(keys.dead_letter, json.dumps(letter, separators=(",", ":")))
    if failed:
        pipe.ltrim(keys.dead_letter, 0, dead_letter_max - 1)


def record_undecodable(pipe: redis.client.Pipeline, keys: Keys, *, fields: dict[str, str],
                       entry: str, consumer: str, error: str, dead_letter_max: int) -> None:
    """Queue on ``pipe`` the dead letter of a stream entry that holds no readable event, so a
    malformed entry is kept for inspection instead of blocking the group forever."""
    letter = {"raw": fields, "failure": {"notifier": "decode", "error": error, "attempts": 1,
                                         "time": now_ms(), "entry": entry,
                                         "consumer": consumer}}
    pipe.lpush(keys.dead_letter, json.dumps(letter, separators=(",", ":")))
    pipe.ltrim(keys.dead_letter, 0, dead_letter_max - 1)


def _read(connection: redis.Redis, key: str, limit: int) -> list[dict[str, Any]]:
    if limit <= 0:
        return []
    out = []
    for text in connection.lrange(key, 0, limit - 1):
        try:
            item = json.loads(text)
        except ValueError:
            log.warning("skipping an unreadable entry in %s", key)
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def recent_alerts(connection: redis.Redis, keys: Keys, limit: int = 100) -> list[dict[str, Any]]:
    """The ``limit`` most recently handled events, newest first (see the module docstring)."""
    return _read(connection, keys.alerts, limit)


def dead_letters(connection: redis.Redis, keys: Keys, limit: int = 100) -> list[dict[str, Any]]:
    """The ``limit`` most recent notifier failures, newest first."""
    return _read(connection, keys.dead_letter, limit)
