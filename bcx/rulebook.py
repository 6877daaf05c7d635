"""Alert rules from both sources: ``[rule:NAME]`` sections and rules stored in Redis.

Stored rules are JSON objects with the keys of a ``[rule:NAME]`` section plus ``name``, kept in
the ``rules`` hash by id; they are validated by the same parsers as the config file.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, fields
from typing import Any

import redis

from bcx import config as configmod
from bcx.config import Config, RuleConfig
from bcx.keys import Keys

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CONFIG_PREFIX = "conf:"


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
    """Validate a rule document (as the API receives it) -> (name, RuleConfig)."""
    if not isinstance(document, dict):
        raise RuleError("body", "expected a JSON object")
    name = document.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleError("name", "expected 1 to 64 letters, digits, '_', '.' or '-'")
    specs = {configmod.key_of(spec): spec for spec in fields(RuleConfig)}
    changes: dict[str, Any] = {}
    for key, value in document.items():
        if key in ("name", "id", "source"):
            continue
        if key not in specs:
            raise RuleError(key, "unknown key; expected one of " + ", ".join(specs))
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int | float | str) or value is None:
            text = "" if value is None else str(value)
        else:
            raise RuleError(key, "expected a string or a number")
        try:
            changes[specs[key].name] = specs[key].metadata["parse"](text)
        except ValueError as exc:
            raise RuleError(key, f"expected {exc}") from None
    rule = RuleConfig(**changes)
    for problem in configmod.rule_problems(rule, f"rule:{name}", "api"):
        raise RuleError(problem.key, f"expected {problem.expected}")
    return name, rule


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
