"""The tracker's statistics in Redis: one hash of feed counters per tracker instance and
exchange, and one hash of sequence gaps per exchange (symbol -> missed messages), incremented
with HINCRBY that saturates at the largest integer Redis stores instead of failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from bcx.keys import Keys
from bcx.store.base import Structure

# Redis integers are signed 64-bit: a counter stops here instead of overflowing (a trade-id
# jump past 2**63 is counted as that many missed trades, saturated, not as an error).
COUNTER_MAX = 2**63 - 1


def saturated(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with every integer capped at ``COUNTER_MAX``, as Redis can store them."""
    return {name: min(value, COUNTER_MAX) if isinstance(value, int) else value
            for name, value in fields.items()}


@dataclass
class StatsWrite:
    """What one :meth:`TrackerStats.write` could not do: ``failures`` (one text per failed
    key), the gap deltas to retry per exchange, and the gap counts that reached
    ``COUNTER_MAX`` and were pinned there."""

    failures: list[str] = field(default_factory=list)
    unwritten: dict[str, Counter[str]] = field(default_factory=dict)
    saturated: list[tuple[str, str]] = field(default_factory=list)


class TrackerStats(Structure):
    """The stats of tracker ``instance`` ("" for the unnamed one)."""

    def __init__(self, connection: redis.Redis, keys: Keys | None = None, instance: str = ""):
        super().__init__(connection, keys)
        self.instance = instance

    def write(self, stats: Mapping[str, dict[str, Any]],
              gaps: Mapping[str, Counter[str]]) -> StatsWrite:
        """Each exchange's stats hash (integers saturated) and its gap deltas, in one round
        trip; an increment that would overflow sets the count to ``COUNTER_MAX``. Raises
        ``redis.RedisError`` when the round trip fails as a whole (nothing is counted then);
        errors of single commands come back in the result."""
        pipe = self.connection.pipeline(transaction=False)
        for exchange, fields in stats.items():
            # redis-py types hset's mapping invariant in its key: it refuses a dict[str, ...].
            pipe.hset(self.keys.tracker_stats(exchange, self.instance),
                      mapping=saturated(fields))  # type: ignore[arg-type]
        order = [(exchange, dict(deltas)) for exchange, deltas in gaps.items()]
        for exchange, deltas in order:
            for symbol, missed in deltas.items():
                pipe.hincrby(self.keys.gaps(exchange), symbol, min(missed, COUNTER_MAX))
        replies = iter(pipe.execute(raise_on_error=False))
        out = StatsWrite()
        for exchange in stats:
            reply = next(replies)
            if isinstance(reply, Exception):
                out.failures.append(f"{self.keys.tracker_stats(exchange, self.instance)}: "
                                    f"{reply}")
        for exchange, deltas in order:
            for symbol, missed in deltas.items():
                reply = next(replies)
                if isinstance(reply, redis.ResponseError) and "overflow" in str(reply):
                    out.saturated.append((exchange, symbol))
                elif isinstance(reply, Exception):
                    # Only this delta goes back: the others are counted already.
                    out.unwritten.setdefault(exchange, Counter())[symbol] = missed
                    out.failures.append(f"{self.keys.gaps(exchange)} {symbol}: {reply}")
        if out.saturated:
            out.failures.extend(self._saturate(out.saturated))
        return out

    def _saturate(self, fields: Iterable[tuple[str, str]]) -> list[str]:
        """Pin gap counts whose increment would overflow at COUNTER_MAX (one writer per
        exchange's symbols, so nothing changes them in between)."""
        pipe = self.connection.pipeline(transaction=False)
        for exchange, symbol in fields:
            pipe.hset(self.keys.gaps(exchange), symbol, COUNTER_MAX)
        try:
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            return [f"saturated gap counts: {exc}"]
        return []

    def read(self, exchanges: Iterable[str],
             instances: Iterable[str] = ("",)) -> dict[str, dict[str, Any]]:
        """The stats hash of each (instance, exchange) that has one, numbers as ints, named
        ``exchange`` for the unnamed instance and ``instance:exchange`` for the others."""
        return {f"{instance}:{exchange}" if instance else exchange: found
                for (instance, exchange), found in self.read_each(exchanges, instances).items()}

    def read_each(self, exchanges: Iterable[str], instances: Iterable[str] = ("",)
                  ) -> dict[tuple[str, str], dict[str, Any]]:
        """(instance, exchange) -> its stats hash, numbers as ints, for each that has one;
        one round trip."""
        pairs = [(instance, exchange) for instance in sorted(set(instances))
                 for exchange in sorted(set(exchanges))]
        pipe = self.connection.pipeline(transaction=False)
        for instance, exchange in pairs:
            pipe.hgetall(self.keys.tracker_stats(exchange, instance))
        out = {}
        for pair, found in zip(pairs, pipe.execute(), strict=True):
            if found:
                out[pair] = {key: value if _int(value) is None else _int(value)
                             for key, value in found.items()}
        return out

    def gaps(self, exchange: str) -> dict[str, int]:
        """symbol -> sequence gaps seen on ``exchange``."""
        found = cast("dict[str, str]", self.connection.hgetall(self.keys.gaps(exchange)))
        return {symbol: int(count) for symbol, count in found.items()}


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
