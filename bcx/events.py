"""Trigger events: their JSON form, and publishing them live (pub/sub) and durably (stream)."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from bcx.keys import Keys
from bcx.timeutil import now_ms

FIRING = "firing"
RESOLVED = "resolved"


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
        data: dict[str, Any] = json.loads(text)
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{name: value for name, value in data.items() if name in known})


def publish(connection: redis.Redis, keys: Keys, event: TriggerEvent, maxlen: int) -> str:
    """XADD to the capped stream (the source of truth) and PUBLISH (the live path) in one
    transaction; returns the stream entry id."""
    payload = event.to_json()
    pipe = connection.pipeline(transaction=True)
    pipe.xadd(keys.events_stream, {"event": payload}, maxlen=maxlen, approximate=True)
    pipe.publish(keys.events_channel, payload)
    entry_id, _ = pipe.execute()
    return entry_id
