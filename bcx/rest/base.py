"""What every venue's REST module shares: the request it asks for, the reply a replay server
gives, the trade-id hole to fill, and small helpers to read and write venue JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bcx.exchanges.base import MalformedFrame
from bcx.exchanges.common import DECIMAL
from bcx.rollups import Candle
from bcx.ticks import Trade


@dataclass(frozen=True)
class Request:
    """One GET: a path below the venue's ``rest_url`` and its query parameters. ``weight``
    is what the venue counts it as against its rate limit."""

    path: str
    params: dict[str, str] = field(default_factory=dict)
    weight: int = 1


@dataclass(frozen=True)
class Reply:
    """A replay server's answer."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Hole:
    """Trades missed between two seen ones of a series: ``after`` (the last trade before the
    hole) and ``before`` (the first after it), each ``(ms, id)``. Ids are numeric where the
    venue numbers its trades per symbol (Coinbase, Binance); else only the times bound the hole."""

    exchange: str
    symbol: str
    after_ms: int
    after_id: str
    before_ms: int
    before_id: str
    found_ms: int = 0

    def numeric(self) -> tuple[int, int] | None:
        """(after, before) as ints when both ids are numbers."""
        if self.after_id.isdigit() and self.before_id.isdigit():
            return int(self.after_id), int(self.before_id)
        return None

    def holds(self, trade: Trade) -> bool:
        """Whether ``trade`` belongs in the hole (by id where numeric, else by time)."""
        ids = self.numeric()
        if ids is not None and trade.id.isdigit():
            return ids[0] < int(trade.id) < ids[1]
        # Strictly between: a trade in the boundary milliseconds may be one seen live under
        # another synthesised id (Kraken), and would be stored twice.
        return self.after_ms < trade.ms < self.before_ms


def loads(body: str | bytes) -> Any:
    """A response body, numbers kept as their text (prices must not go through float)."""
    try:
        return json.loads(body, parse_float=str)
    except ValueError as exc:
        raise MalformedFrame(f"response is not JSON: {exc}") from None


def rows(body: Any, what: str, width: int) -> list[list[Any]]:
    """A response body that is a list of rows (lists) of at least ``width`` values; anything
    else makes the response malformed, naming ``what`` it should hold."""
    if not isinstance(body, list):
        raise MalformedFrame(f"{what}s: expected a list, got {type(body).__name__}")
    for row in body:
        if not isinstance(row, list) or len(row) < width:
            raise MalformedFrame(f"{what} {row!r}")
    return body


def text(value: Any, what: str) -> str:
    """A decimal as text, whether the venue sent a string or a number."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedFrame(f"{what}: expected a number, got {value!r}")
    found = str(value)
    if not DECIMAL.fullmatch(found):
        raise MalformedFrame(f"{what}: not a number: {found!r}")
    return found


def integer(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise MalformedFrame(f"{what}: expected an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedFrame(f"{what}: expected an integer, got {value!r}") from None


def number(value: str) -> Any:
    """Decimal text as a JSON number for a replay answer (venues that send numbers)."""
    return float(value) if any(c in value for c in ".eE") else int(value)


def param_int(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    return int(value)


def imported(candle: Candle) -> Candle:
    """``candle`` marked as imported from a venue (see bcx.rollups.Candle.imported)."""
    return Candle(candle.start_ms, candle.open, candle.high, candle.low, candle.close,
                  candle.count, candle.volume, candle.quote, candle.buy, imported=True)
