"""The alert history and the dead-letter list: what the documents of handled events hold.
``bcx.store.alerts.AlertLog`` stores them and reads them back (the web API's
``/api/v1.0/alerts`` reads :meth:`~bcx.store.alerts.AlertLog.recent_alerts`).

Both are capped LISTs, newest first, of JSON objects. An alert is the event's own fields plus
``delivery``::

    {"id": "…", "rule": "…", "series": "…", "state": "firing", …,
     "delivery": {"entry": "<stream id>", "time": <ms>, "consumer": "…",
                  "notifiers": {"log": "ok", "webhook": "failed: HTTP 503"},
                  "silenced": false}}

``silenced`` true: the rule was silenced, the event was recorded and not delivered (no
notifier saw it).

A dead letter is one notifier's failure on one event: the event's fields plus ``failure``
(``notifier``, ``error``, ``attempts``, ``time``, ``entry``, ``consumer``). An entry whose
event could not be decoded is dead-lettered with ``raw`` (the stream fields) instead of the
event's fields and ``notifier`` "decode".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from bcx.store.alerts import AlertLog
from bcx.timeutil import now_ms


@dataclass(frozen=True)
class Outcome:
    """What one notifier did with one event."""

    notifier: str
    ok: bool
    error: str = ""
    attempts: int = 1

    def summary(self) -> str:
        return "ok" if self.ok else f"failed: {self.error}"


def alert(event: dict[str, Any], *, entry: str, consumer: str, outcomes: list[Outcome],
          time: int, silenced: bool = False) -> dict[str, Any]:
    """The alert-history document of a handled event."""
    return dict(event, delivery={"entry": entry, "time": time, "consumer": consumer,
                                 "notifiers": {o.notifier: o.summary() for o in outcomes},
                                 "silenced": silenced})


def failures(event: dict[str, Any], *, entry: str, consumer: str, outcomes: list[Outcome],
             time: int) -> list[dict[str, Any]]:
    """One dead letter per notifier that gave up on the event."""
    return [dict(event, failure={"notifier": o.notifier, "error": o.error,
                                 "attempts": o.attempts, "time": time, "entry": entry,
                                 "consumer": consumer})
            for o in outcomes if not o.ok]


def undecodable(fields: dict[str, str], *, entry: str, consumer: str, error: str,
                time: int) -> dict[str, Any]:
    """The dead letter of a stream entry that holds no readable event: kept for inspection
    instead of blocking the group forever."""
    return {"raw": fields, "failure": {"notifier": "decode", "error": error, "attempts": 1,
                                       "time": time, "entry": entry, "consumer": consumer}}


def record(alerts: AlertLog, pipe: redis.client.Pipeline, *, event: dict[str, Any], entry: str,
           consumer: str, outcomes: list[Outcome], alerts_max: int,
           dead_letter_max: int, silenced: bool = False) -> None:
    """Queue on ``pipe`` the alert-history entry of a handled event and one dead letter per
    notifier that gave up, each list trimmed to its cap."""
    time = now_ms()
    alerts.record(pipe, alert(event, entry=entry, consumer=consumer, outcomes=outcomes,
                              time=time, silenced=silenced),
                  failures(event, entry=entry, consumer=consumer, outcomes=outcomes, time=time),
                  alerts_max=alerts_max, dead_letter_max=dead_letter_max)


def record_undecodable(alerts: AlertLog, pipe: redis.client.Pipeline, *, fields: dict[str, str],
                       entry: str, consumer: str, error: str, dead_letter_max: int) -> None:
    """Queue on ``pipe`` the dead letter of an undecodable stream entry."""
    letter = undecodable(fields, entry=entry, consumer=consumer, error=error, time=now_ms())
    alerts.record_undecodable(pipe, letter, dead_letter_max=dead_letter_max)
