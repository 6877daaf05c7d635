"""Read-side queries behind the API: latest values with their age, capped raw history and
trades and the tracker's feed statistics. Stored decimal strings become floats only here, at
the edge where JSON numbers are produced (Highcharts plots numbers)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from bcx.coldtier import tiered
from bcx.keys import series_id
from bcx.store.readers import TickReader, TradeReader

FIELDS = ("price", "bid", "ask")
Item = TypeVar("Item", bound=Sequence[Any])


class QueryError(ValueError):
    """A query that cannot be answered as asked; ``param`` names the parameter to fix."""

    def __init__(self, param: str, message: str):
        self.param = param
        self.message = message
        super().__init__(f"{param}: {message}")


def num(text: str | None) -> float | None:
    """A stored decimal string as a JSON-safe float (None when absent or not finite)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def spread(bid: str | None, ask: str | None) -> float | None:
    """``ask - bid`` computed in decimal so ``0.3 - 0.1`` reads ``0.2``, not ``0.19999…``."""
    if bid is None or ask is None:
        return None
    try:
        return num(str(Decimal(ask) - Decimal(bid)))
    except InvalidOperation:
        return None


def latest_view(found: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """``{time, price, bid, ask, spread, age_s, bid_size, ask_size, last_size, last_side}``
    from a decoded latest-values hash (sizes and the last trade's are null when unknown)."""
    time_ms = found.get("time")
    return {
        "time": time_ms,
        "price": num(found.get("price")),
        "bid": num(found.get("bid")),
        "ask": num(found.get("ask")),
        "spread": spread(found.get("bid"), found.get("ask")),
        "age_s": None if time_ms is None else round(max(0, now_ms - time_ms) / 1000, 3),
        "bid_size": num(found.get("bid_size")),
        "ask_size": num(found.get("ask_size")),
        "last_size": num(found.get("last_size")),
        "last_side": found.get("last_side") if found.get("last_side") in ("buy", "sell")
        else None,
    }


def overview(store: TickReader, now_ms: int, stale_after_s: float) -> list[dict[str, Any]]:
    """Every known series with its latest values, age and whether it is stale."""
    names = store.series()
    out = []
    for (exchange, symbol), found in zip(names, store.latest_many(names), strict=True):
        view = latest_view(found or {}, now_ms)
        age = view["age_s"]
        out.append({"series": series_id(exchange, symbol), "exchange": exchange,
                    "symbol": symbol, **view,
                    "stale": age is None or age > stale_after_s})
    return out


def history(store: TickReader, exchange: str, symbol: str, field: str, start_ms: int | None,
            end_ms: int | None, limit: int, newest_first: bool = False) -> dict[str, Any]:
    """At most ``limit`` points of the range: the oldest ones, listed oldest first, or with
    ``newest_first`` the newest ones, listed newest first. When the range holds more,
    ``truncated`` is set with where to ask again for the rest: ``next_start`` (oldest first)
    or ``next_end`` (newest first); see :func:`page`."""
    found, truncated, following = page(
        lambda count: store.range(exchange, symbol, field, start_ms, end_ms, limit=count,
                                  newest_first=newest_first), limit, newest_first)
    points = []
    for ms, text in found:  # the hot loop of big answers: kept free of calls that add nothing
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value):
            points.append([ms, value])
    return {"series": series_id(exchange, symbol), "field": field, "start": start_ms,
            "end": end_ms, **_paging(newest_first, truncated, following), "count": len(points),
            "source": tiered.source(store), "points": points}


def page(read: Callable[[int], list[Item]], limit: int, newest_first: bool
         ) -> tuple[list[Item], bool, int | None]:
    """At most ``limit`` items in the order ``read(count)`` returns them (each starting with
    its time in ms), whether the range holds more, and the time (inclusive) where the next
    page starts: the next ``start`` oldest first, the next ``end`` newest first.

    Several items may share a millisecond (two trades, or a bid changing twice): those at the
    millisecond where a page is cut all go to the next page, so paging neither skips nor
    repeats one, unless a whole page is one millisecond (then the rest of that millisecond is
    skipped to make progress)."""
    found = read(limit + 1)
    if len(found) <= limit:
        return found, False, None
    cut = found[limit][0]
    found = found[:limit]
    whole = [item for item in found if item[0] != cut]
    if whole:
        return whole, True, cut
    return found, True, cut - 1 if newest_first else cut + 1


def _paging(newest_first: bool, truncated: bool, following: int | None) -> dict[str, Any]:
    return {"order": "desc" if newest_first else "asc", "truncated": truncated,
            "next_start": None if newest_first else following,
            "next_end": following if newest_first else None}


def trades(store: TradeReader, exchange: str, symbol: str, start_ms: int | None,
           end_ms: int | None, limit: int, newest_first: bool = False) -> dict[str, Any]:
    """At most ``limit`` trades of the range as ``[ms, price, size, side, id]``, capped, ordered
    and paged like :func:`history`."""
    found, truncated, following = page(
        lambda count: store.range(exchange, symbol, start_ms, end_ms, limit=count,
                                  newest_first=newest_first), limit, newest_first)
    rows = []
    for ms, price_text, size_text, side, trade_id in found:
        price, size = num(price_text), num(size_text)
        if price is not None and size is not None:
            rows.append([ms, price, size, side, trade_id])
    return {"series": series_id(exchange, symbol), "start": start_ms, "end": end_ms,
            **_paging(newest_first, truncated, following), "count": len(rows),
            "source": tiered.source(store), "trades": rows}
