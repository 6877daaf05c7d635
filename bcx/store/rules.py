"""Alert rules stored through the API and the rule engine's saved states.

``bcx:{rules}`` maps rule id -> rule JSON, ``bcx:{rules}:state`` rule id -> state JSON,
``bcx:{rules}:silences`` rule id -> silence JSON and ``bcx:{rules}:acks`` "<rule id> <instance>"
-> acknowledgement JSON; all share the ``{rules}`` hash tag, so a delete removes a rule, its
state, silence and acknowledgements in one transaction.
A change notice (the rule id) goes out on ``keys.rules_changed_channel`` after each add or
delete, never inside the transaction (Redis Cluster refuses PUBLISH there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import cast

import redis

from bcx.keys import Keys

log = logging.getLogger(__name__)


class RuleStore:
    """Reads and writes one Redis database's rules and rule states."""

    def __init__(self, connection: redis.Redis, keys: Keys | None = None):
        self.connection = connection
        self.keys = keys or Keys()

    def _target(self, pipeline: redis.client.Pipeline | None) -> redis.Redis:
        return pipeline if pipeline is not None else self.connection

    # ------------------------------------------------------------------ rules
    def documents(self) -> dict[str, str]:
        """Every stored rule: id -> its JSON text."""
        return cast("dict[str, str]", self.connection.hgetall(self.keys.rules))

    def document(self, rule_id: str) -> str | None:
        return cast("str | None", self.connection.hget(self.keys.rules, rule_id))

    def count(self) -> int:
        return self.connection.hlen(self.keys.rules)

    def save(self, rule_id: str, text: str,
             check: Callable[[dict[str, str]], None] | None = None) -> None:
        """Store a rule, then publish the change notice.

        ``check`` sees the stored documents under WATCH and raises to refuse the add: a
        concurrent add changes the hash and this one is re-checked, so two requests can neither
        both take the last free place nor both take one name."""

        def add(pipe: redis.client.Pipeline) -> None:
            documents = cast("dict[str, str]", pipe.hgetall(self.keys.rules))
            if check is not None:
                check(documents)
            pipe.multi()
            pipe.hset(self.keys.rules, rule_id, text)

        self.connection.transaction(add, self.keys.rules)
        self._notify(rule_id)

    def replace(self, rule_id: str, change: Callable[[str, dict[str, str]], str]) -> bool:
        """Rewrite a stored rule: ``change(text, documents)`` sees its JSON and every stored
        document under WATCH and returns the new text (or raises to refuse). False when there
        is no such rule; watchers are told otherwise."""

        def rewrite(pipe: redis.client.Pipeline) -> bool:
            documents = cast("dict[str, str]", pipe.hgetall(self.keys.rules))
            if rule_id not in documents:
                return False
            text = change(documents[rule_id], documents)
            pipe.multi()
            pipe.hset(self.keys.rules, rule_id, text)
            return True

        # redis-py types the callable as returning None, though value_from_callable returns
        # what it returns.
        found = self.connection.transaction(rewrite, self.keys.rules,  # type: ignore[arg-type]
                                            value_from_callable=True)
        if found:
            self._notify(rule_id)
        return bool(found)

    def delete(self, rule_id: str) -> bool:
        """Remove a rule and its state (one MULTI: same hash tag); True if the rule existed."""
        pipe = self.connection.pipeline(transaction=True)
        pipe.hdel(self.keys.rules, rule_id)
        pipe.hdel(self.keys.rules_state, rule_id)
        pipe.hdel(self.keys.rules_silences, rule_id)
        removed = pipe.execute()[0]
        if removed:
            self.drop_acks(rule_id)
        if removed:
            self._notify(rule_id)
        return bool(removed)

    def notify(self, rule_id: str) -> None:
        """Tell watchers that ``rule_id`` (or its silence or acknowledgements) changed."""
        self._notify(rule_id)

    def _notify(self, rule_id: str) -> None:
        # The change is stored by now: a lost notice only delays watchers until their next
        # full reload, so it is not the caller's failure.
        try:
            self.connection.publish(self.keys.rules_changed_channel, rule_id)
        except redis.RedisError as exc:
            log.warning("rule change notice for %s not published (watchers pick the change "
                        "up at their next reload): %s", rule_id, exc)

    # ------------------------------------------------------------------ states
    def states(self) -> dict[str, str]:
        """Every saved rule state: id -> its JSON text."""
        return cast("dict[str, str]", self.connection.hgetall(self.keys.rules_state))

    def save_states(self, states: Mapping[str, str],
                    pipeline: redis.client.Pipeline | None = None) -> None:
        if states:
            # redis-py types hset's mapping invariant in its key: it refuses a dict[str, ...].
            self._target(pipeline).hset(self.keys.rules_state,
                                        mapping=dict(states))  # type: ignore[arg-type]

    def drop_states(self, rule_ids: Iterable[str],
                    pipeline: redis.client.Pipeline | None = None) -> None:
        ids = list(rule_ids)
        if ids:
            self._target(pipeline).hdel(self.keys.rules_state, *ids)

    def state(self, rule_id: str) -> str | None:
        return cast("str | None", self.connection.hget(self.keys.rules_state, rule_id))

    # ------------------------------------------------------------------ silences
    def silences(self) -> dict[str, str]:
        """Every silence: rule id -> its JSON text (lapsed ones too, until lifted)."""
        return cast("dict[str, str]", self.connection.hgetall(self.keys.rules_silences))

    def silence(self, rule_id: str, text: str) -> None:
        self.connection.hset(self.keys.rules_silences, rule_id, text)
        self._notify(rule_id)

    def lift_silence(self, rule_id: str) -> bool:
        removed = self.connection.hdel(self.keys.rules_silences, rule_id)
        if removed:
            self._notify(rule_id)
        return bool(removed)

    # ------------------------------------------------------------------ acknowledgements
    def acks(self) -> dict[str, str]:
        """Every acknowledgement: "<rule id> <instance>" -> its JSON text."""
        return cast("dict[str, str]", self.connection.hgetall(self.keys.rules_acks))

    def acknowledge(self, rule_id: str, instance: str, text: str) -> None:
        self.connection.hset(self.keys.rules_acks, f"{rule_id} {instance}", text)
        self._notify(rule_id)

    def drop_ack(self, rule_id: str, instance: str,
                 pipeline: redis.client.Pipeline | None = None) -> None:
        self._target(pipeline).hdel(self.keys.rules_acks, f"{rule_id} {instance}")

    def drop_acks(self, rule_id: str) -> None:
        """Every acknowledgement of one rule (its rule was deleted)."""
        names = cast("list[str]", self.connection.hkeys(self.keys.rules_acks))
        fields = [name for name in names
                  if name.partition(" ")[0] == rule_id]
        if fields:
            self.connection.hdel(self.keys.rules_acks, *fields)
