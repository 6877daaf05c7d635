"""Trades: one sorted set per series, scored by trade time, whose member keeps the trade's
time, price, size, taker side and id verbatim (:func:`bcx.ticks.trade_member`), so no two
trades ever collapse and a trade received twice is stored once. The tracker writes them with
its ticks (:meth:`bcx.store.ticks.TickStore.write`) and announces each batch on
``keys.trades_channel``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

import orjson

from bcx.keys import series_id
from bcx.store.base import Structure
from bcx.ticks import Trade, TradeFields, before, parse_trade_member, score, trade_member


class TradeStore(Structure):
    """The trades of every series: written in batches, read by time range."""

    def write(self, trades: Sequence[Trade], pipeline: Any | None = None) -> int:
        """ZADD every trade (joining ``pipeline`` when given); returns how many were sent."""
        if not trades:
            return 0
        by_series: dict[tuple[str, str], list[float | str]] = defaultdict(list)
        for trade in trades:
            by_series[(trade.exchange, trade.symbol)] += (score(trade.ms), trade_member(trade))
        target = self._target(pipeline)
        for (exchange, symbol), args in by_series.items():
            target.execute_command("ZADD", self.keys.trades(exchange, symbol), *args)
        return len(trades)

    def publish(self, trades: Sequence[Trade]) -> int:
        """PUBLISH one live notice of a written batch on ``keys.trades_channel`` (never in
        a pipeline: Redis Cluster refuses it there); how many subscribers got it."""
        return int(self.connection.publish(self.keys.trades_channel, trade_message(trades)))


    def range(self, exchange: str, symbol: str, start_ms: int | None = None,
              end_ms: int | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[TradeFields]:
        """Trades with ``start_ms <= time <= end_ms``, oldest first unless ``newest_first``."""
        return [parse_trade_member(item) for item in self._by_time(
            self.keys.trades(exchange, symbol), start_ms, end_ms, limit, newest_first)]

    def page(self, exchange: str, symbol: str, start_ms: int, end_ms: int | None = None,
             limit: int | None = None) -> list[TradeFields]:
        """Trades with ``start_ms <= time < end_ms`` (``end_ms`` None: to the newest), oldest
        first, at most ``limit``: the history manager's pages of the trades roll-up's source.
        A member that does not read as a trade is skipped (the archive keeps it verbatim)."""
        high = "+inf" if end_ms is None else before(end_ms)
        start, num = (0, limit) if limit is not None else (None, None)
        found = self.connection.zrangebyscore(self.keys.trades(exchange, symbol),
                                              score(start_ms), high, start, num)
        out = []
        for item in cast("list[str]", found):
            try:
                out.append(parse_trade_member(item))
            except ValueError:
                continue
        return out

    def oldest_ms(self, exchange: str, symbol: str) -> int | None:
        """Time of the oldest trade kept (from its score), or None when there is none."""
        first = cast("list[tuple[str, float]]", self.connection.zrange(
            self.keys.trades(exchange, symbol), 0, 0, withscores=True))
        return round(first[0][1] * 1000) if first else None

    def count(self, exchange: str, symbol: str, start_ms: int | None = None,
              end_ms: int | None = None) -> int:
        """Trades with ``start_ms <= time <= end_ms`` (every one kept without bounds)."""
        key = self.keys.trades(exchange, symbol)
        if start_ms is None and end_ms is None:
            return int(self.connection.zcard(key))
        low = "-inf" if start_ms is None else score(start_ms)
        high = "+inf" if end_ms is None else score(end_ms)
        return int(self.connection.zcount(key, low, high))


def trade_message(trades: Sequence[Trade]) -> bytes:
    """The live-trade message: ``[{"series", "time", "price", "size", "side", "id"}, …]``
    with price and size as the venue's text."""
    return orjson.dumps([{"series": series_id(t.exchange, t.symbol), "time": t.ms,
                        "price": t.price, "size": t.size, "side": t.side, "id": t.id}
                       for t in trades])
