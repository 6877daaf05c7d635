"""Alert rules from both sources: ``[rule:NAME]`` sections and rules stored in Redis.

Stored rules are JSON objects with the keys of a ``[rule:NAME]`` section plus ``name``, kept in
the ``rules`` hash by id; they are validated by the same parsers as the config file. Adding one
is refused when its series is neither configured nor known, its name is taken, or the hash
already holds ``[web] rules_max`` rules (only rules stored through the API count: the config
file's are the operator's).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from bcx import config as configmod
from bcx.config import Config, RuleConfig
from bcx.keys import split_series_id
from bcx.store import RuleStore, Store

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CONFIG_PREFIX = "conf:"
# The string forms of durations the API takes (the OpenAPI document publishes them): window
# has no sub-second forms, so every string matching its pattern is at least its 1 s minimum.
DURATION_PATTERNS = {"window": r"[1-9][0-9]{0,8}(s|m|h|d|w|y)?",
                     "for": r"[0-9]{1,9}(\.[0-9]{1,3})?(ms|s|m|h|d|w|y)?",
                     "cooldown": r"[0-9]{1,9}(\.[0-9]{1,3})?(ms|s|m|h|d|w|y)?"}
DURATION_MAX_S = 1e12
THRESHOLD_MAX = 1e15


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    source: str  # "config" or "api"
    spec: RuleConfig

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "source": self.source}
        for spec in fields(self.spec):
            out[configmod.key_of(spec)] = getattr(self.spec, spec.name)
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
        if key in ("name", "id", "source"):
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
    return name, rule


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
        name, spec = parse_rule(json.loads(text))
    except (ValueError, RuleError):
        return None
    return Rule(rule_id, name, "api", spec)


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
    rule = Rule(uuid.uuid4().hex[:12], name, "api", spec)
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


def delete_rule(store: RuleStore, rule_id: str) -> bool:
    """Remove a stored rule and its state; False when there was none. Watchers are told."""
    return store.delete(rule_id)
