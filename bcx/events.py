"""Trigger events: their JSON form; :func:`publish` hands one to the event stream
(``bcx.store.events``: durably to the stream, live to pub/sub).

Two kinds of event share the stream: the watcher's rule events (``rule`` = the rule id), which
are alerts, and the tracker's feed reports (``kind`` ``feed_down``, ``rule``
``feed_down:<exchange>``), which are the input of ``feed_down`` rules and not alerts themselves:
the server does not deliver them, so a feed that goes down is announced once, by the rule that
watches it, with its ``for`` and ``cooldown``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from bcx.keys import Keys
from bcx.store.events import EventStream
from bcx.timeutil import now_ms

FIRING = "firing"
RESOLVED = "resolved"
FEED_DOWN = "feed_down"
FEED_REPORT_PREFIX = "feed_down:"  # + exchange: the rule field of the tracker's feed reports


@dataclass
class TriggerEvent:
    """One state change of a rule. ``id`` is unique per event so receivers can drop the
    duplicates at-least-once delivery allows.

    ``rule`` is the rule's id, ``name`` and ``labels`` its name and labels; ``value`` and
    ``threshold`` are numbers (or null: a feed_down rule has neither), ``value_text`` the
    verbatim decimal text of the value where it came from Redis or is exact (a price, an
    absolute spread, a volume). ``silenced``: the rule was silenced when the event happened;
    the server records such an event without delivering it."""

    rule: str
    series: str
    state: str
    kind: str
    value: float | None = None
    threshold: float | None = None
    time: int = field(default_factory=now_ms)
    message: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    value_text: str | None = None
    silenced: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TriggerEvent:
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a trigger event is a JSON object")
        known = {name for name in cls.__dataclass_fields__}
        event = cls(**{name: value for name, value in data.items() if name in known})
        # Events of versions before 0.3 carry a level's value as its decimal text: read it as
        # a number (keeping the text), so old entries of the stream are still delivered.
        if isinstance(event.value, str):
            event.value_text = event.value_text or event.value
            event.value = _number(event.value)
        if isinstance(event.threshold, str):
            event.threshold = _number(event.threshold)
        if not event.name:
            event.name = str(event.rule)
        if not isinstance(event.labels, dict):
            event.labels = {}
        return event


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def is_feed_report(event: TriggerEvent | Mapping[str, Any]) -> bool:
    """True for the tracker's own feed_down report (see the module docstring), given as an
    event or as its decoded JSON."""
    if isinstance(event, Mapping):
        kind, rule = event.get("kind"), event.get("rule")
    else:
        kind, rule = event.kind, event.rule
    return kind == FEED_DOWN and str(rule).startswith(FEED_REPORT_PREFIX)


def publish(connection: redis.Redis, keys: Keys, event: TriggerEvent, maxlen: int) -> str:
    """Publish ``event`` to the stream and the live channel (see
    :meth:`bcx.store.events.EventStream.publish`); returns the stream entry id."""
    return EventStream(connection, keys).publish(event.to_json(), maxlen)
