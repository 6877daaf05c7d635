"""The state machine of one alert rule instance, and its persisted form.

An instance is one thing a rule watches: its series, or for a ``feed_down`` rule over every
exchange, one exchange. Each evaluation says whether the condition holds; the machine turns that
into at most one event (Prometheus-style ``for`` plus a cooldown)::

    ok --holds--> pending --held `for` and cooldown since last firing over--> firing (FIRING)
    pending --stops holding--> ok (no event)
    firing --stops holding--> ok (RESOLVED)
    firing --still holds, cooldown > 0 and a cooldown since the last firing--> firing (FIRING
                                                                               again: repeat)

A repeat is suppressed while the instance is acknowledged (``acked``); the acknowledgement ends
with the firing (the engine drops it on RESOLVED).

States live in the ``rules:state`` hash as JSON, ``{"instances": {key: {...}}}`` per rule id,
so a restarted watcher neither fires again what already fired nor forgets a pending ``for``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bcx.events import FIRING, RESOLVED

OK, PENDING, FIRING_STATE = "ok", "pending", "firing"


@dataclass
class Instance:
    state: str = OK
    since: int | None = None  # ms the condition started holding
    fired: int | None = None  # ms of the last FIRING event (cooldowns count from it)
    armed: bool = False  # cross rules: a value on the near side of the threshold was seen
    entered: int | None = None  # ms the instance entered its current state
    value: float | None = None  # the last observed value (saved with the next state change)

    def step(self, holds: bool, now: int, for_ms: int, cooldown_ms: int,
             acked: bool = False) -> str | None:
        """Advance on one evaluation; returns FIRING, RESOLVED or None (no event)."""
        if not holds:
            was_firing = self.state == FIRING_STATE
            if self.state != OK:
                self.entered = now
            self.state, self.since = OK, None
            return RESOLVED if was_firing else None
        if self.state == OK:
            self.state, self.since, self.entered = PENDING, now, now
        cooled = self.fired is None or now - self.fired >= cooldown_ms
        if self.state == PENDING:
            if now - (self.since or now) >= for_ms and cooled:
                self.state, self.fired, self.entered = FIRING_STATE, now, now
                return FIRING
            return None
        if cooldown_ms > 0 and cooled and not acked:
            self.fired = now
            return FIRING
        return None

    def as_dict(self) -> dict[str, object]:
        # By hand, not dataclasses.asdict: this runs for every rule on every evaluation.
        return {"state": self.state, "since": self.since, "fired": self.fired,
                "armed": self.armed, "entered": self.entered, "value": self.value}


@dataclass
class RuleState:
    instances: dict[str, Instance] = field(default_factory=dict)

    def instance(self, key: str) -> Instance:
        return self.instances.setdefault(key, Instance())

    def fingerprint(self) -> tuple[tuple[str, str, int | None, int | None, bool], ...]:
        """Changes whenever ``to_json()`` would, at a fraction of its cost: an evaluation
        compares it before and after to save only the states that changed."""
        return tuple((key, value.state, value.since, value.fired, value.armed)
                     for key, value in self.instances.items())

    def to_json(self) -> str:
        return json.dumps({"instances": {key: value.as_dict()
                                         for key, value in sorted(self.instances.items())}},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RuleState:
        try:
            data = json.loads(text)
            return cls({key: Instance(**value) for key, value in data["instances"].items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()  # an unreadable state is a fresh start, not a crash loop
