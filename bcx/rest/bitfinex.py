"""Bitfinex v2 REST: ``GET /v2/trades/<sym>/hist`` (``[ID, MTS, AMOUNT, PRICE]``, amount
negative for a sell; ``start``/``end`` in ms, ``limit`` up to 10000, ``sort=1`` oldest first)
and ``GET /v2/candles/trade:<tf>:<sym>/hist`` (``[MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]``, same
paging). Trade ids are global across pairs, so a hole is bounded by time. See docs/REST.md."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bcx.exchanges.bitfinex import Bitfinex
from bcx.rest.base import Hole, Reply, Request, imported, integer, number, param_int, rows, text
from bcx.rollups import Candle
from bcx.ticks import BUY, SELL, Trade

NAME = "bitfinex"
DEFAULT_URL = "https://api-pub.bitfinex.com"
# About 30 requests a minute on the trades and candles endpoints.
RATE = (10.0, 0.5)
TRADES_LIMIT = 10000
CANDLES_LIMIT = 10000
INTERVALS = {60: "1m", 300: "5m", 900: "15m", 1800: "30m", 3600: "1h", 10800: "3h",
             21600: "6h", 43200: "12h", 86400: "1D"}


def trades_request(hole: Hole, cursor: str | None) -> Request:
    start = cursor if cursor is not None else str(hole.after_ms)
    return Request(f"/v2/trades/{Bitfinex.to_native(hole.symbol)}/hist",
                   {"start": start, "end": str(hole.before_ms), "limit": str(TRADES_LIMIT),
                    "sort": "1"})


def read_trades(hole: Hole, body: Any, headers: Mapping[str, str]
                ) -> tuple[list[Trade], str | None]:
    trades = []
    for row in rows(body, "trade", 4):
        amount = text(row[2], "AMOUNT")
        trades.append(Trade(NAME, hole.symbol, integer(row[1], "MTS"),
                            price=text(row[3], "PRICE"), size=amount.lstrip("-"),
                            side=SELL if amount.startswith("-") else BUY,
                            id=str(integer(row[0], "ID"))))
    kept = [trade for trade in trades if hole.holds(trade)]
    if len(trades) < TRADES_LIMIT:
        return kept, None
    # The next page starts at the last time seen (inclusive: a trade seen twice is one member).
    return kept, str(trades[-1].ms)


def candles_request(symbol: str, interval_s: int, start_ms: int, end_ms: int) -> Request:
    return Request(f"/v2/candles/trade:{INTERVALS[interval_s]}:{Bitfinex.to_native(symbol)}"
                   "/hist", {"start": str(start_ms), "end": str(end_ms - 1),
                             "limit": str(CANDLES_LIMIT), "sort": "1"})


def read_candles(body: Any) -> list[Candle]:
    out = []
    for row in rows(body, "candle", 6):
        out.append(imported(Candle(integer(row[0], "MTS"), text(row[1], "OPEN"),
                                   text(row[3], "HIGH"), text(row[4], "LOW"),
                                   text(row[2], "CLOSE"), 0, text(row[5], "VOLUME"),
                                   None, None)))
    return sorted(out, key=lambda c: c.start_ms)


# ---- server side (bcx replay) ----

def route(path: str) -> tuple[str, str] | None:
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["v2", "trades"] and parts[3] == "hist":
        return "trades", parts[2]
    if len(parts) == 4 and parts[:2] == ["v2", "candles"] and parts[3] == "hist":
        return "candles", parts[2]
    return None


def _window(params: Mapping[str, str], limit_max: int) -> tuple[int, int, int, bool]:
    limit = min(param_int(params, "limit", 125) or 125, limit_max)
    start = param_int(params, "start", 0) or 0
    end = param_int(params, "end", 2**62) or 2**62
    return start, end, limit, params.get("sort") == "1"


def serve_trades(symbol: str, params: Mapping[str, str], trades: Sequence[Trade]) -> Reply:
    start, end, limit, oldest_first = _window(params, TRADES_LIMIT)
    found = sorted((t for t in trades if start <= t.ms <= end), key=lambda t: (t.ms, t.id),
                   reverse=not oldest_first)[:limit]
    return Reply(200, [[number(t.id), t.ms, number(t.size if t.side == BUY else "-" + t.size),
                        number(t.price)] for t in found])


def serve_candles(symbol: str, params: Mapping[str, str],
                  candles: Callable[[int, int, int], list[Candle]]) -> Reply:
    key = symbol.split(":")
    by_code = {code: seconds for seconds, code in INTERVALS.items()}
    interval = by_code.get(key[1]) if len(key) >= 3 else None
    if interval is None:
        return Reply(500, ["error", 10020, "key: invalid"])
    start, end, limit, oldest_first = _window(params, CANDLES_LIMIT)
    if start == 0:
        start = end - limit * interval * 1000
    found = candles(start, min(end + 1, start + limit * interval * 1000), interval)[:limit]
    if not oldest_first:
        found.reverse()
    return Reply(200, [[c.start_ms, number(c.open), number(c.close), number(c.high),
                        number(c.low), number(c.volume or "0")] for c in found])
