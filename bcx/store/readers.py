"""What readers of raw history need of a store: :class:`bcx.store.TickStore` and
:class:`bcx.store.TradeStore` are these, and so are :class:`bcx.coldtier.tiered.TieredTicks`
and :class:`bcx.coldtier.tiered.TieredTrades`, which reach into the archive too."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import redis

from bcx.keys import Keys
from bcx.ticks import Point, TradeFields


class TickReader(Protocol):
    connection: redis.Redis
    keys: Keys

    def range(self, exchange: str, symbol: str, field: str, start_ms: int | None = None,
              end_ms: int | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[Point]: ...

    def count(self, exchange: str, symbol: str, field: str, start_ms: int | None = None,
              end_ms: int | None = None) -> int: ...

    def oldest_ms(self, exchange: str, symbol: str, field: str) -> int | None: ...

    def count_and_oldest(self, exchange: str, symbol: str, field: str, start_ms: int,
                         end_ms: int) -> tuple[int, int | None]: ...

    def latest_many(self, series: Iterable[tuple[str, str]]) -> list[dict[str, Any] | None]: ...

    def series(self) -> list[tuple[str, str]]: ...

    def has_series(self, exchange: str, symbol: str) -> bool: ...


class TradeReader(Protocol):
    def range(self, exchange: str, symbol: str, start_ms: int | None = None,
              end_ms: int | None = None, limit: int | None = None,
              newest_first: bool = False) -> list[TradeFields]: ...

    def count(self, exchange: str, symbol: str, start_ms: int | None = None,
              end_ms: int | None = None) -> int: ...

    def oldest_ms(self, exchange: str, symbol: str) -> int | None: ...
