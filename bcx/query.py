"""Read-side queries behind the API: latest values with their age, capped raw history and
the tracker's feed statistics. Stored decimal strings become floats only here, at the edge
where JSON numbers are produced (Highcharts plots numbers)."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from bcx.keys import series_id
from bcx.store import Store

FIELDS = ("price", "bid", "ask")


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
    """``{time, price, bid, ask, spread, age_s}`` from a decoded latest-values hash."""
    time_ms = found.get("time")
    return {
        "time": time_ms,
        "price": num(found.get("price")),
        "bid": num(found.get("bid")),
        "ask": num(found.get("ask")),
        "spread": spread(found.get("bid"), found.get("ask")),
        "age_s": None if time_ms is None else round(max(0, now_ms - time_ms) / 1000, 3),
    }


def overview(store: Store, now_ms: int, stale_after_s: float) -> list[dict[str, Any]]:
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


def history(store: Store, exchange: str, symbol: str, field: str, start_ms: int | None,
            end_ms: int | None, limit: int, newest_first: bool = False) -> dict[str, Any]:
    """At most ``limit`` points of the range: the oldest ``limit``, listed oldest first, or
    with ``newest_first`` the newest ``limit``, listed newest first. When the range holds
    more, ``truncated`` is set with where to ask again for the rest: ``next_start`` (oldest
    first) or ``next_end`` (newest first)."""
    found = store.range(exchange, symbol, field, start_ms, end_ms, limit=limit + 1,
                        newest_first=newest_first)
    truncated = len(found) > limit
    found = found[:limit]
    points = []
    for ms, text in found:  # the hot loop of big answers: kept free of calls that add nothing
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value):
            points.append([ms, value])
    last = found[-1][0] if truncated and found else None
    return {"series": series_id(exchange, symbol), "field": field, "start": start_ms,
            "end": end_ms, "order": "desc" if newest_first else "asc", "count": len(points),
            "truncated": truncated,
            "next_start": last + 1 if last is not None and not newest_first else None,
            "next_end": last - 1 if last is not None and newest_first else None,
            "points": points}
