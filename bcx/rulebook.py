"""Alert rules from both sources: ``[rule:NAME]`` sections and rules stored in Redis.

Stored rules are JSON objects with the keys of a ``[rule:NAME]`` section plus ``name``, kept in
the ``rules`` hash by id; they are validated by the same parsers as the config file. Adding one
is refused when its series is neither configured nor known, its name is taken, or the hash
already holds ``[web] rules_max`` rules (only rules stored through the API count: the config
file's are the operator's).

A stored rule can be changed in place (:func:`patch_rule`: threshold, window, for, cooldown,
enabled, name, labels), silenced for a while (:func:`silence_rule`; its events are still recorded
but not delivered) and its firing alerts acknowledged (:func:`acknowledge`: no repeat until it
resolves). Rules of ``bcx.conf`` are read-only (their silences and acknowledgements are not
edits and are allowed). :func:`rule_status` says what a rule is doing now.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from bcx import config as configmod
from bcx.config import Config, RuleConfig
from bcx.events import FIRING, RESOLVED, TriggerEvent
from bcx.keys import split_series_id
from bcx.store import AlertLog, EventStream, RuleStore, Store

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CONFIG_PREFIX = "conf:"
# The string forms of durations the API takes (the OpenAPI document publishes them): window
# has no sub-second forms, so every string matching its pattern is at least its 1 s minimum.
DURATION_PATTERNS = {"window": r"[1-9][0-9]{0,8}(s|m|h|d|w|y)?",
                     "for": r"[0-9]{1,9}(\.[0-9]{1,3})?(ms|s|m|h|d|w|y)?",
                     "cooldown": r"[0-9]{1,9}(\.[0-9]{1,3})?(ms|s|m|h|d|w|y)?"}
DURATION_MAX_S = 1e12
THRESHOLD_MAX = 1e15
LABELS_MAX = 16
LABEL_VALUE_MAX = 200
PATCHABLE = ("threshold", "window", "for", "cooldown", "enabled", "name", "labels")
COMMENT_MAX = 500
# What GET /rules says a rule is doing now.
NORMAL, PENDING, FIRING_NOW, SILENCED, NO_DATA = ("normal", "pending", "firing", "silenced",
                                                  "no_data")


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    source: str  # "config" or "api"
    spec: RuleConfig
    labels: dict[str, str] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "source": self.source}
        for spec in fields(self.spec):
            out[configmod.key_of(spec)] = getattr(self.spec, spec.name)
        out["labels"] = dict(self.labels)
        return out


class RuleError(ValueError):
    """A rule document that cannot be accepted; ``field`` names the offending key."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class RuleConflict(Exception):
    """A valid rule that cannot be added as things stand: its name is taken or the API's rules
    are at ``[web] rules_max``."""


class UnknownSeries(RuleError):
    """A rule for a series that no tracked exchange is configured with and Redis never saw:
    it could never fire."""

    def __init__(self, series: str):
        super().__init__("series", f"unknown series {series}: neither in the symbols of an "
                                   "exchange the tracker streams nor seen in Redis")


def parse_rule(document: Any) -> tuple[str, RuleConfig]:
    """Validate a rule document (as the API receives it) -> (name, RuleConfig).

    Stricter than a ``[rule:NAME]`` section, and exactly what the OpenAPI ``RuleInput`` schema
    documents: each key has one JSON type and one spelling (``"above"``, not ``"ABOVE"``; a
    boolean ``enabled``; a number or a duration string matching ``DURATION_PATTERNS``), so a
    script's mistake is refused instead of being read loosely. ``id`` and ``source``, which
    a listed rule carries, are ignored so that a rule can be posted back as listed."""
    if not isinstance(document, dict):
        raise RuleError("body", "expected a JSON object")
    name = document.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RuleError("name", "expected 1 to 64 letters, digits, '_', '.' or '-'")
    specs = {configmod.key_of(spec): spec for spec in fields(RuleConfig)}
    changes: dict[str, Any] = {}
    for key, value in document.items():
        if key in ("name", "id", "source", "labels", "status"):
            continue
        if key not in specs:
            raise RuleError(key, "unknown key; expected one of " + ", ".join(specs))
        try:
            parsed = specs[key].metadata["parse"](_config_text(key, value))
        except ValueError as exc:
            raise RuleError(key, f"expected {exc}") from None
        if isinstance(parsed, str) and parsed != value:
            raise RuleError(key, f"expected {parsed!r} (names are written exactly so)")
        changes[specs[key].name] = parsed
    rule = RuleConfig(**changes)
    for problem in configmod.rule_problems(rule, f"rule:{name}", "api"):
        raise RuleError(problem.key, f"expected {problem.expected}")
    parse_labels(document.get("labels", {}))
    return name, rule


def parse_labels(value: Any) -> dict[str, str]:
    """A rule's ``labels``: an object of at most 16 names (as rule names) to strings of at most
    200 characters, passed on in its events (for routing by the receiver)."""
    if not isinstance(value, dict) or len(value) > LABELS_MAX:
        raise RuleError("labels", f"expected an object of at most {LABELS_MAX} labels")
    for key, text in value.items():
        if not _NAME.fullmatch(key) or not isinstance(text, str) or len(text) > LABEL_VALUE_MAX:
            raise RuleError("labels", "expected names of 1 to 64 letters, digits, '_', '.' or "
                                      f"'-' and string values of at most {LABEL_VALUE_MAX} "
                                      "characters")
    return dict(value)


def _config_text(key: str, value: Any) -> str:
    """A JSON value of the API's rule document, type-checked, as the string that the
    ``[rule:NAME]`` parser of ``key`` reads (which then checks its range)."""
    if key == "enabled":
        if not isinstance(value, bool):
            raise RuleError(key, "expected true or false")
        return "yes" if value else "no"
    if key in DURATION_PATTERNS:
        if isinstance(value, str):
            if not re.fullmatch(DURATION_PATTERNS[key], value):
                raise RuleError(key, "expected a number of seconds or a duration such as "
                                     + ("90s, 5m or 1h" if key == "window" else "0, 500ms or 5m"))
            return value
        return _decimal(key, value, DURATION_MAX_S, "a number of seconds or a duration")
    if key == "threshold":
        return "" if value is None else _decimal(key, value, THRESHOLD_MAX, "a number")
    if not isinstance(value, str):
        raise RuleError(key, "expected a string")
    return value


def _decimal(key: str, value: Any, bound: float, expected: str) -> str:
    """A JSON number within +-``bound`` as a plain decimal string (no exponent)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(key, f"expected {expected}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not -bound <= number <= bound:  # also refuses NaN, which Python's JSON reader takes
        raise RuleError(key, f"expected {expected} from {-bound:g} to {bound:g}")
    return format(Decimal(repr(number)), "f")


def config_rules(config: Config) -> list[Rule]:
    return [Rule(CONFIG_PREFIX + name, name, "config", spec)
            for name, spec in config.rules.items()]


def stored_rules(store: RuleStore) -> list[Rule]:
    """Rules kept in Redis; a stored document that no longer validates is skipped."""
    found = (_stored(rule_id, text) for rule_id, text in sorted(store.documents().items()))
    return [rule for rule in found if rule is not None]


def stored_rule(store: RuleStore, rule_id: str) -> Rule | None:
    """One rule kept in Redis, or None when there is none (or it no longer validates)."""
    text = store.document(rule_id)
    return None if text is None else _stored(rule_id, text)


def _stored(rule_id: str, text: str) -> Rule | None:
    try:
        document = json.loads(text)
        name, spec = parse_rule(document)
    except (ValueError, RuleError):
        return None
    return Rule(rule_id, name, "api", spec, parse_labels(document.get("labels", {})))


def all_rules(store: RuleStore, config: Config) -> list[Rule]:
    return config_rules(config) + stored_rules(store)


def save_rule(store: RuleStore, ticks: Store, config: Config, document: Any) -> Rule:
    """Validate and store a rule; returns it with its new id. Watchers are told at once.

    Raises ``RuleError`` (``UnknownSeries`` for a series that could never fire) or
    ``RuleConflict`` (name taken, or ``[web] rules_max`` reached)."""
    name, spec = parse_rule(document)
    _check_series(ticks, config, spec)
    if name in config.rules:
        raise RuleConflict(f"a rule named {name!r} already exists: {CONFIG_PREFIX}{name}")
    rule = Rule(uuid.uuid4().hex[:12], name, "api", spec, parse_labels(document.get("labels", {})))
    stored = {key: value for key, value in rule.to_dict().items() if key not in ("id", "source")}
    limit = config.web.rules_max

    def check(texts: dict[str, str]) -> None:
        # Under WATCH: a concurrent add changes the hash and this one is checked again, so two
        # requests can neither both take the last free place nor both take one name.
        if len(texts) >= limit:
            raise RuleConflict(f"the API holds {len(texts)} rules, the most [web] rules_max "
                               f"({limit}) allows; delete one first")
        for rule_id, text in texts.items():
            if _name_of(text) == name:
                raise RuleConflict(f"a rule named {name!r} already exists: {rule_id}")

    store.save(rule.id, json.dumps(stored), check)
    return rule


def _name_of(text: str) -> Any:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document.get("name") if isinstance(document, dict) else None


def _check_series(store: Store, config: Config, spec: RuleConfig) -> None:
    """A rule must watch something that can produce data: a series of a tracked exchange's
    ``symbols`` or one Redis has seen; a ``feed_down`` rule (whose series only names an
    exchange, or is empty for every exchange) an exchange the tracker streams or has seen."""
    if not spec.series:
        return
    exchange, symbol = split_series_id(spec.series)
    tracked = exchange in config.tracker.exchanges
    if spec.kind == "feed_down":
        if not tracked and all(known != exchange for known, _ in store.series()):
            raise UnknownSeries(spec.series)
        return
    if tracked and symbol in config.exchange(exchange).symbols:
        return
    if not store.has_series(exchange, symbol):
        raise UnknownSeries(spec.series)


def delete_rule(store: RuleStore, rule_id: str, events: EventStream | None = None,
                maxlen: int = 0) -> bool:
    """Remove a stored rule and its state; False when there was none. Watchers are told.
    With ``events``, each instance the rule had firing gets its ``resolved`` event: an alert
    never stays open because its rule is gone."""
    rule, state = stored_rule(store, rule_id), store.state(rule_id)
    if not store.delete(rule_id):
        return False
    if events is not None and rule is not None:
        resolve_firing(events, rule, state, maxlen)
    return True


def resolve_firing(events: EventStream, rule: Rule, state_text: str | None, maxlen: int,
                   reason: str = "rule deleted") -> int:
    """Publish ``resolved`` for every firing instance of a saved state; returns how many."""
    sent = 0
    for key, instance in sorted(_instances(state_text).items()):
        if instance.get("state") != FIRING_NOW:
            continue
        event = TriggerEvent(rule=rule.id, series=key, state=RESOLVED, kind=rule.spec.kind,
                             threshold=rule.spec.threshold, name=rule.name,
                             labels=dict(rule.labels), message=f"{rule.name} {RESOLVED}: "
                                                              f"{key} ({reason})")
        events.publish(event.to_json(), maxlen)
        sent += 1
    return sent


def _instances(state_text: str | None) -> dict[str, dict[str, Any]]:
    try:
        found = json.loads(state_text or "{}").get("instances", {})
    except (ValueError, AttributeError):
        return {}
    return {key: value for key, value in found.items() if isinstance(value, dict)} \
        if isinstance(found, dict) else {}


def find_rule(store: RuleStore, config: Config, rule_id: str) -> Rule | None:
    if rule_id.startswith(CONFIG_PREFIX):
        return next((rule for rule in config_rules(config) if rule.id == rule_id), None)
    return stored_rule(store, rule_id)


def patch_rule(store: RuleStore, config: Config, rule_id: str, changes: Any,
               events: EventStream | None = None, maxlen: int = 0) -> Rule | None:
    """Change a stored rule in place (the keys of ``PATCHABLE``); None when there is none.
    Raises ``RuleError`` for a key that cannot be changed or a value that is invalid and
    ``RuleConflict`` for a rule of bcx.conf or a name taken. Disabling a firing rule sends
    its ``resolved`` events, as deleting it does."""
    if rule_id.startswith(CONFIG_PREFIX):
        if find_rule(store, config, rule_id) is None:
            return None
        raise RuleConflict(f"rule {rule_id} is defined in bcx.conf; change it there")
    if not isinstance(changes, dict) or not changes:
        raise RuleError("body", "expected a JSON object with at least one of "
                                + ", ".join(PATCHABLE))
    for key in changes:
        if key not in PATCHABLE:
            raise RuleError(key, "cannot be changed; expected one of " + ", ".join(PATCHABLE)
                            + " (delete the rule and add it again to change the rest)")
    # Read before the change: once told, a watcher drops the state of a rule it disabled.
    before, state = stored_rule(store, rule_id), store.state(rule_id)
    result: list[Rule] = []

    def change(text: str, documents: dict[str, str]) -> str:
        document = json.loads(text)
        document.update(changes)
        if document.get("threshold") is None:
            document.pop("threshold", None)
        name, spec = parse_rule(document)
        if name in config.rules:
            raise RuleConflict(f"a rule named {name!r} already exists: {CONFIG_PREFIX}{name}")
        for other, other_text in documents.items():
            if other != rule_id and _name_of(other_text) == name:
                raise RuleConflict(f"a rule named {name!r} already exists: {other}")
        result[:] = [Rule(rule_id, name, "api", spec, parse_labels(document.get("labels", {})))]
        stored = {key: value for key, value in result[0].to_dict().items()
                  if key not in ("id", "source")}
        return json.dumps(stored)

    if not store.replace(rule_id, change):
        return None
    rule = result[0]
    if events is not None and before is not None and before.spec.enabled \
            and not rule.spec.enabled:
        resolve_firing(events, rule, state, maxlen, "rule disabled")
    return rule


def parse_silence(body: Any) -> tuple[float, str]:
    """``{"for": "1h" | seconds, "comment": "…"}`` -> (seconds, comment)."""
    if not isinstance(body, dict):
        raise RuleError("body", 'expected a JSON object such as {"for": "1h", "comment": "…"}')
    for key in body:
        if key not in ("for", "comment"):
            raise RuleError(key, "unknown key; expected for, comment")
    if "for" not in body:
        raise RuleError("for", "required: how long, in seconds or as a duration such as 1h")
    spec = next(spec for spec in fields(RuleConfig) if configmod.key_of(spec) == "for")
    try:
        seconds = spec.metadata["parse"](_config_text("for", body["for"]))
    except ValueError as exc:
        raise RuleError("for", f"expected {exc}") from None
    if seconds <= 0:
        raise RuleError("for", "expected a duration above 0")
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > COMMENT_MAX:
        raise RuleError("comment", f"expected a string of at most {COMMENT_MAX} characters")
    return seconds, comment


def silence_rule(store: RuleStore, config: Config, rule_id: str, body: Any,
                 now: int) -> dict[str, Any] | None:
    """Silence a rule: its events are recorded but not delivered until ``for`` has passed (or
    the silence is lifted). None when there is no such rule."""
    seconds, comment = parse_silence(body)
    if find_rule(store, config, rule_id) is None:
        return None
    silence = {"until": now + int(seconds * 1000), "comment": comment, "time": now}
    store.silence(rule_id, json.dumps(silence))
    return silence


def silences(store: RuleStore) -> dict[str, dict[str, Any]]:
    """Every silence: rule id -> ``{"until", "comment", "time"}`` (lapsed ones included)."""
    out = {}
    for rule_id, text in store.silences().items():
        try:
            silence = json.loads(text)
            int(silence["until"])
        except (ValueError, TypeError, KeyError):
            continue
        out[rule_id] = silence
    return out


def acknowledge(store: RuleStore, alerts: AlertLog, alert_id: str, now: int,
                limit: int) -> dict[str, Any]:
    """Acknowledge the firing alert ``alert_id`` (an event id of the alert history): its rule
    instance stops repeating until it resolves. Raises ``LookupError`` for an unknown alert,
    ``RuleConflict`` for one that is not firing now."""
    alert = next((item for item in alerts.recent_alerts(limit) if item.get("id") == alert_id),
                 None)
    if alert is None:
        raise LookupError(f"no alert {alert_id} in the alert history")
    rule_id, key = str(alert.get("rule")), str(alert.get("series"))
    instance = _instances(store.state(rule_id)).get(key, {})
    if alert.get("state") != FIRING or instance.get("state") != FIRING_NOW:
        raise RuleConflict(f"alert {alert_id} is not firing now: nothing to acknowledge")
    ack = {"alert": alert_id, "rule": rule_id, "series": key, "time": now}
    store.acknowledge(rule_id, key, json.dumps(ack))
    return ack


def rule_status(rule: Rule, state_text: str | None, silence: dict[str, Any] | None,
                now: int) -> dict[str, Any]:
    """What a rule is doing now: ``state`` (normal, pending, firing, silenced, no_data), since
    when (ms, or null when unknown), its last value and its silence. Over several instances
    (a feed_down rule over every exchange) the most urgent state wins."""
    instances = _instances(state_text)
    rank = {FIRING_NOW: 2, PENDING: 1}
    state, since, value = NO_DATA, None, None
    if instances:
        key, top = max(instances.items(), key=lambda item: (
            rank.get(item[1].get("state", ""), 0), item[1].get("entered") or 0))
        state = {FIRING_NOW: FIRING_NOW, PENDING: PENDING}.get(top.get("state", ""), NORMAL)
        since, value = top.get("entered"), top.get("value")
    active = silence is not None and int(silence["until"]) > now
    if active:
        assert silence is not None
        state, since = SILENCED, silence.get("time")
    return {"state": state, "since": since, "value": value,
            "silenced_until": int(silence["until"]) if active and silence else None,
            "silence_comment": silence.get("comment", "") if active and silence else None}
