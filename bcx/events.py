"""Trigger events: their JSON form, and publishing them live (pub/sub) and durably (stream).

Two kinds of event share the stream: the watcher's rule events (``rule`` = the rule id), which
are alerts, and the tracker's feed reports (``kind`` ``feed_down``, ``rule``
``feed_down:<exchange>``), which are the input of ``feed_down`` rules and not alerts themselves:
the server does not deliver them, so a feed that goes down is announced once, by the rule that
watches it, with its ``for`` and ``cooldown``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from bcx.keys import Keys
from bcx.timeutil import now_ms

FIRING = "firing"
RESOLVED = "resolved"
FEED_DOWN = "feed_down"
FEED_REPORT_PREFIX = "feed_down:"  # + exchange: the rule field of the tracker's feed reports


@dataclass
class TriggerEvent:
    """One state change of a rule. ``id`` is unique per event so receivers can drop the
    duplicates at-least-once delivery allows."""

    rule: str
    series: str
    state: str
    kind: str
    value: float | str | None = None
    threshold: float | None = None
    time: int = field(default_factory=now_ms)
    message: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TriggerEvent:
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a trigger event is a JSON object")
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{name: value for name, value in data.items() if name in known})


def is_feed_report(event: TriggerEvent | Mapping[str, Any]) -> bool:
    """True for the tracker's own feed_down report (see the module docstring), given as an
    event or as its decoded JSON."""
    if isinstance(event, Mapping):
        kind, rule = event.get("kind"), event.get("rule")
    else:
        kind, rule = event.kind, event.rule
    return kind == FEED_DOWN and str(rule).startswith(FEED_REPORT_PREFIX)


def publish(connection: redis.Redis, keys: Keys, event: TriggerEvent, maxlen: int) -> str:
    """XADD to the capped stream (the source of truth), then PUBLISH (the live path); returns
    the stream entry id. Not one transaction: Redis Cluster refuses PUBLISH inside one. An
    error between the two leaves the event in the stream, so the server still delivers it;
    only live viewers miss it."""
    payload = event.to_json()
    entry_id = connection.xadd(keys.events_stream, {"event": payload}, maxlen=maxlen,
                               approximate=True)
    connection.publish(keys.events_channel, payload)
    return entry_id
