"""Alert rules from both sources: ``[rule:NAME]`` sections and rules stored in Redis.

Stored rules are JSON objects with the keys of a ``[rule:NAME]`` section plus ``name``, kept in
the ``rules`` hash by id; they are validated by the same parsers as the config file.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import redis

from bcx import config as configmod
from bcx.config import Config, RuleConfig
from bcx.keys import Keys

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


def stored_rules(connection: redis.Redis, keys: Keys) -> list[Rule]:
    """Rules kept in Redis; a stored document that no longer validates is skipped."""
    out = []
    for rule_id, text in sorted(connection.hgetall(keys.rules).items()):
        try:
            name, spec = parse_rule(json.loads(text))
        except (ValueError, RuleError):
            continue
        out.append(Rule(rule_id, name, "api", spec))
    return out


def all_rules(connection: redis.Redis, keys: Keys, config: Config) -> list[Rule]:
    return config_rules(config) + stored_rules(connection, keys)


def save_rule(connection: redis.Redis, keys: Keys, document: Any) -> Rule:
    """Validate and store a rule; returns it with its new id. Watchers are told at once."""
    name, spec = parse_rule(document)
    rule = Rule(uuid.uuid4().hex[:12], name, "api", spec)
    stored = {key: value for key, value in rule.to_dict().items() if key not in ("id", "source")}
    pipe = connection.pipeline(transaction=True)
    pipe.hset(keys.rules, rule.id, json.dumps(stored))
    pipe.publish(keys.rules_changed_channel, rule.id)
    pipe.execute()
    return rule


def delete_rule(connection: redis.Redis, keys: Keys, rule_id: str) -> bool:
    pipe = connection.pipeline(transaction=True)
    pipe.hdel(keys.rules, rule_id)
    pipe.hdel(keys.rules_state, rule_id)
    pipe.publish(keys.rules_changed_channel, rule_id)
    removed, _, _ = pipe.execute()
    return bool(removed)
