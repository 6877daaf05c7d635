"""The raw time-series store: batches of ticks in, ranges and latest values out.

Each series and field is a sorted set scored by event time in epoch seconds whose members are
``"<ms>:<value>"``, so a recurring price is never lost and an exact repeat is stored once.
Top-of-book sizes are series of their own (``bid_size``, ``ask_size``) kept the same way; a
batch's trades (:class:`bcx.store.trades.TradeStore`) join the same pipelined round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast

import orjson
import redis

from bcx.keys import Keys, series_id
from bcx.store.base import Structure
from bcx.store.registry import SeriesRegistry
from bcx.store.trades import TradeStore
from bcx.ticks import Point, Tick, Trade, before, parse_member, score, stamp
from bcx.timeutil import now_ms

FIELDS = ("price", "bid", "ask")
# The top-of-book sizes, stored beside their bid and ask (members "<ms>:<size>").
SIZE_FIELDS = ("bid_size", "ask_size")
ALL_FIELDS = (*FIELDS, *SIZE_FIELDS)
log = logging.getLogger(__name__)


class TickStore(Structure):
    """Reads and writes one Redis database's series. New series go into ``registry`` (its
    own, or the one of the process's :class:`bcx.store.Stores`); trades written with a batch
    go through ``trades`` (likewise)."""

    def __init__(self, connection: redis.Redis, keys: Keys | None = None,
                 publish_ticks: bool = False, registry: SeriesRegistry | None = None,
                 trades: TradeStore | None = None):
        super().__init__(connection, keys)
        self.registry = registry or SeriesRegistry(connection, self.keys)
        self.trades = trades or TradeStore(connection, self.keys)
        self.publish_ticks = publish_ticks
        # Newest event time written per (series, field) by this process, and per series under
        # the field "time", so a late batch never moves the latest-values hash backwards. A
        # remembered time ahead of the clock is not believed: one tick stamped in the future
        # would otherwise hold the hash until that time came.
        self._newest: dict[tuple[str, str, str], int] = {}

    # ------------------------------------------------------------------ writes
    def write(self, ticks: Sequence[Tick], trades: Sequence[Trade] = ()) -> int:
        """Write a batch of ticks (their sizes included) and trades in one pipelined round
        trip; returns the number of values sent (a trade counts as one).

        The latest-values hash gets each field's newest value, the sizes with it, and from
        the newest trade ``last_size``, ``last_side`` and ``last_trade_ms``. Raises
        ``redis.RedisError`` when Redis cannot be reached; nothing is remembered as written
        in that case, so the caller may retry the same batch.
        """
        if not ticks and not trades:
            return 0
        by_series: dict[tuple[str, str], list[Tick]] = {}
        for tick in ticks:
            ident = (tick.exchange, tick.symbol)
            group = by_series.get(ident)
            if group is None:
                by_series[ident] = [tick]
            else:
                group.append(tick)
        pipe = self.connection.pipeline(transaction=False)
        now = now_ms()
        newest: dict[tuple[str, str, str], int] = {}
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        count = 0
        for (exchange, symbol), group in by_series.items():
            fresh = latest[(exchange, symbol)] = {}
            series_ms = self._newest.get((exchange, symbol, "time"), -1)
            stamps = [stamp(tick.ms) for tick in group]
            for field in ALL_FIELDS:
                # One ZADD per field: (score, member) pairs, from each tick's stamp().
                args: list[str] = []
                best_ms = self._newest.get((exchange, symbol, field), -1)
                best = None
                for tick, (at, prefix) in zip(group, stamps, strict=True):
                    value = getattr(tick, field)
                    if value is not None:
                        args += (at, prefix + value)
                        ms = tick.ms
                        # A remembered time ahead of the clock is not believed (see above).
                        if ms >= best_ms or best_ms > now:
                            best_ms, best = ms, value
                if not args:
                    continue
                pipe.execute_command("ZADD", self.keys.raw(exchange, symbol, field), *args)
                count += len(args) // 2
                if best is not None:
                    newest[(exchange, symbol, field)] = best_ms
                    fresh[field] = best
                    fresh[f"{field}_ms"] = best_ms
                    # The series' time is its newest field's: a field catching up with an
                    # older time (a trade time behind a receive time) must not lower it.
                    series_ms = best_ms if series_ms > now else max(best_ms, series_ms)
            if fresh:
                fresh["time"] = newest[(exchange, symbol, "time")] = series_ms
        for trade in trades:
            slot = (trade.exchange, trade.symbol, "trade")
            known = newest.get(slot, self._newest.get(slot, -1))
            if trade.ms >= known or known > now:
                newest[slot] = trade.ms
                latest.setdefault((trade.exchange, trade.symbol), {}).update(
                    last_size=trade.size, last_side=trade.side, last_trade_ms=trade.ms)
        count += self.trades.write(trades, pipeline=pipe)
        for (exchange, symbol), mapping in latest.items():
            if mapping:
                # redis-py types hset's mapping invariant in its key: it refuses a dict[str, ...].
                pipe.hset(self.keys.latest(exchange, symbol), mapping=mapping)  # type: ignore[arg-type]
        new = self.registry.add((series_id(e, s) for e, s in latest), pipeline=pipe)
        pipe.execute()
        self._newest.update(newest)
        self.registry.confirm(new)
        if self.publish_ticks:
            # Never inside the pipeline: Redis Cluster refuses PUBLISH there. The batch is
            # stored by now, so a lost notice only delays live viewers, never loses data.
            try:
                if ticks:
                    self.connection.publish(self.keys.ticks_channel, _batch_message(ticks))
                if trades:
                    self.trades.publish(trades)
            except redis.RedisError as exc:
                log.warning("live tick notice not published (the batch is stored): %s", exc)
        return count

    # ------------------------------------------------------------------ reads
    def range(self, exchange: str, symbol: str, field: str, start_ms: int | None = None,
              end_ms: int | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[Point]:
        """Points of one field with ``start_ms <= time <= end_ms``, oldest first unless
        ``newest_first``; at most ``limit`` of them."""
        return [parse_member(item) for item in self._by_time(
            self.keys.raw(exchange, symbol, field), start_ms, end_ms, limit, newest_first)]

    def count(self, exchange: str, symbol: str, field: str, start_ms: int | None = None,
              end_ms: int | None = None) -> int:
        low = "-inf" if start_ms is None else score(start_ms)
        high = "+inf" if end_ms is None else score(end_ms)
        return self.connection.zcount(self.keys.raw(exchange, symbol, field), low, high)

    def latest(self, exchange: str, symbol: str) -> dict[str, Any] | None:
        """``{time, price, bid, ask, bid_size, ask_size, last_size, last_side, price_ms, …}``
        with times as int ms, or None if unknown."""
        found = self.connection.hgetall(self.keys.latest(exchange, symbol))
        return _decode_latest(cast("dict[str, str]", found))

    def latest_many(self, series: Iterable[tuple[str, str]]) -> list[dict[str, Any] | None]:
        pipe = self.connection.pipeline(transaction=False)
        for exchange, symbol in series:
            pipe.hgetall(self.keys.latest(exchange, symbol))
        return [_decode_latest(found) for found in pipe.execute()]

    def series(self) -> list[tuple[str, str]]:
        """Every known (exchange, symbol), sorted (the registry's)."""
        return self.registry.all()

    def has_series(self, exchange: str, symbol: str) -> bool:
        return self.registry.contains(exchange, symbol)

    # ------------------------------------------------------------------ retention
    def trim(self, exchange: str, symbol: str, field: str, cutoff_ms: int) -> int:
        """Delete the points older than ``cutoff_ms``; returns how many went."""
        return self.connection.zremrangebyscore(self.keys.raw(exchange, symbol, field), "-inf",
                                                before(cutoff_ms))

    # ------------------------------------------------------------------ history and rules
    def points_before(self, exchange: str, symbol: str, field: str, start_ms: int,
                      end_ms: int | None = None, limit: int | None = None) -> list[Point]:
        """Points with ``start_ms <= time < end_ms`` (``end_ms`` None: to the newest), oldest
        first, at most ``limit``: the history manager's pages of its raw source."""
        high = "+inf" if end_ms is None else before(end_ms)
        start, num = (0, limit) if limit is not None else (None, None)
        found = self.connection.zrangebyscore(self.keys.raw(exchange, symbol, field),
                                              score(start_ms), high, start, num)
        return [parse_member(item) for item in cast("list[str]", found)]

    def oldest_ms(self, exchange: str, symbol: str, field: str) -> int | None:
        """Time of the oldest point kept (from its score), or None for an empty field."""
        first = cast("list[tuple[str, float]]", self.connection.zrange(
            self.keys.raw(exchange, symbol, field), 0, 0, withscores=True))
        return round(first[0][1] * 1000) if first else None

    def count_and_oldest(self, exchange: str, symbol: str, field: str, start_ms: int,
                         end_ms: int) -> tuple[int, int | None]:
        """(points in ``[start_ms, end_ms]``, time of the oldest point kept or None), in one
        round trip."""
        key = self.keys.raw(exchange, symbol, field)
        pipe = self.connection.pipeline(transaction=False)
        pipe.zcount(key, score(start_ms), score(end_ms))
        pipe.zrange(key, 0, 0, withscores=True)
        count, oldest = pipe.execute()
        return count, round(oldest[0][1] * 1000) if oldest else None

    def last_at_or_before(self, reads: Sequence[tuple[str, str, str, int]]
                          ) -> list[str | None]:
        """For each ``(exchange, symbol, field, ms)``, the value of the last point at or
        before ``ms`` (None when there is none), all in one round trip."""
        if not reads:
            return []
        pipe = self.connection.pipeline(transaction=False)
        for exchange, symbol, field, ms in reads:
            pipe.zrevrangebyscore(self.keys.raw(exchange, symbol, field), score(ms), "-inf",
                                  start=0, num=1)
        return [parse_member(hit[0])[1] if hit else None for hit in pipe.execute()]

    def members_before(self, exchange: str, symbol: str, field: str, cutoff_ms: int,
                       limit: int) -> list[str]:
        """The stored members (verbatim, valid or not) older than ``cutoff_ms``, oldest first,
        at most ``limit``: what the archive copies before they are removed."""
        return cast("list[str]", self.connection.zrangebyscore(
            self.keys.raw(exchange, symbol, field), "-inf", before(cutoff_ms), start=0, num=limit))

    def remove_members(self, exchange: str, symbol: str, field: str, members: Sequence[str],
                       pipeline: redis.client.Pipeline | None = None) -> int:
        """Remove exactly ``members``; returns how many were there."""
        if not members:
            return 0
        target = pipeline if pipeline is not None else self.connection
        return target.zrem(self.keys.raw(exchange, symbol, field), *members)


# The name the other modules still import until they move to TickStore.
Store = TickStore


def _decode_latest(found: dict[str, str]) -> dict[str, Any] | None:
    if not found:
        return None
    out: dict[str, Any] = dict(found)
    for name in ("time", "last_trade_ms",
                 *(f"{field}_ms" for field in (*FIELDS, *SIZE_FIELDS))):
        if name in out:
            out[name] = int(out[name])
    return out


def _batch_message(ticks: Sequence[Tick]) -> bytes:
    """The live-tick message: ``[{"series", "time", "price"|"bid"|"ask": "…"}, …]``
    (orjson: a fifth of ``json``'s time for a batch)."""
    items = []
    for tick in ticks:
        item: dict[str, Any] = {"series": series_id(tick.exchange, tick.symbol), "time": tick.ms}
        item.update(tick.values())
        items.append(item)
    return orjson.dumps(items)
