"""Binance spot REST: ``GET /api/v3/aggTrades`` (oldest first, ``fromId`` inclusive, or a
``startTime``/``endTime`` window under an hour; at most 1000 a page) and ``GET
/api/v3/klines`` (``[open time, o, h, l, c, volume, close time, quote volume, trades, taker
buy base, taker buy quote, ignore]``, at most 1000 a request). Limits are request weight per
minute per IP; ``429``/``418`` carry ``Retry-After``. See docs/REST.md.

The websocket's ``@trade`` stream numbers single trades; an aggregate trade covers the trade
ids ``f`` to ``l``. One that lies wholly inside a hole is stored with id ``f`` (a single
trade: the same member as the live one) or ``"f-l"``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bcx.exchanges.base import MalformedFrame
from bcx.rest.base import Hole, Reply, Request, imported, integer, param_int, rows, text
from bcx.rollups import Candle, dec_text
from bcx.ticks import BUY, SELL, Trade

NAME = "binance"
DEFAULT_URL = "https://api.binance.com"
# 6000 request weight a minute per IP.
RATE = (6000.0, 100.0)
TRADES_LIMIT = 1000
CANDLES_LIMIT = 1000
AGG_TRADES_WEIGHT = 4
KLINES_WEIGHT = 2
HOUR_MS = 3_600_000
INTERVALS = {60: "1m", 180: "3m", 300: "5m", 900: "15m", 1800: "30m", 3600: "1h",
             7200: "2h", 14400: "4h", 21600: "6h", 28800: "8h", 43200: "12h", 86400: "1d"}


def native(symbol: str) -> str:
    return symbol.replace("-", "").upper()


def trades_request(hole: Hole, cursor: str | None) -> Request:
    """The first page by time (the hole's ids are trade ids, not aggregate ids), then by
    ``fromId``."""
    params = {"symbol": native(hole.symbol), "limit": str(TRADES_LIMIT)}
    if cursor is None:
        params["startTime"] = str(hole.after_ms)
        params["endTime"] = str(min(hole.before_ms, hole.after_ms + HOUR_MS - 1))
    else:
        params["fromId"] = cursor
    return Request("/api/v3/aggTrades", params, AGG_TRADES_WEIGHT)


def read_trades(hole: Hole, body: Any, headers: Mapping[str, str]
                ) -> tuple[list[Trade], str | None]:
    if not isinstance(body, list):
        raise MalformedFrame(f"aggTrades: expected a list, got {type(body).__name__}")
    ids = hole.numeric()
    kept, last_agg, last_ms = [], None, 0
    for entry in body:
        if not isinstance(entry, dict):
            raise MalformedFrame(f"aggTrade {entry!r}")
        first, last = integer(entry.get("f"), "f"), integer(entry.get("l"), "l")
        last_agg, last_ms = integer(entry.get("a"), "a"), integer(entry.get("T"), "T")
        inside = (ids[0] < first and last < ids[1]) if ids else (
            hole.after_ms <= last_ms <= hole.before_ms)
        if inside:
            kept.append(Trade(NAME, hole.symbol, last_ms, price=text(entry.get("p"), "p"),
                              size=text(entry.get("q"), "q"),
                              side=SELL if entry.get("m") is True else BUY,
                              id=str(first) if first == last else f"{first}-{last}"))
    if last_agg is None or len(body) < TRADES_LIMIT or last_ms > hole.before_ms:
        return kept, None
    return kept, str(last_agg + 1)


def candles_request(symbol: str, interval_s: int, start_ms: int, end_ms: int) -> Request:
    return Request("/api/v3/klines", {
        "symbol": native(symbol), "interval": INTERVALS[interval_s],
        "startTime": str(start_ms), "endTime": str(end_ms - 1), "limit": str(CANDLES_LIMIT)},
        KLINES_WEIGHT)


def read_candles(body: Any) -> list[Candle]:
    out = []
    for row in rows(body, "kline", 11):
        out.append(imported(Candle(
            integer(row[0], "open time"), text(row[1], "open"), text(row[2], "high"),
            text(row[3], "low"), text(row[4], "close"), integer(row[8], "trades"),
            text(row[5], "volume"), text(row[7], "quote volume"), text(row[9], "taker buy"))))
    return out


# ---- server side (bcx replay) ----

def route(path: str) -> tuple[str, str] | None:
    if path == "/api/v3/aggTrades":
        return "trades", ""
    if path == "/api/v3/klines":
        return "candles", ""
    return None


def serve_trades(symbol: str, params: Mapping[str, str], trades: Sequence[Trade]) -> Reply:
    limit = min(param_int(params, "limit", 500) or 500, TRADES_LIMIT)
    start, end = param_int(params, "startTime"), param_int(params, "endTime")
    from_id = param_int(params, "fromId")
    if start is not None and end is not None and end - start >= HOUR_MS:
        return Reply(400, {"code": -1127, "msg": "More than 1 hours between startTime and "
                                                 "endTime."})
    # Each recorded trade is its own aggregate: aggregate id = trade id.
    ordered = sorted(trades, key=lambda t: int(t.id))
    if from_id is not None:
        page = [t for t in ordered if int(t.id) >= from_id]
    else:
        page = [t for t in ordered if (start is None or t.ms >= start)
                and (end is None or t.ms <= end)]
    return Reply(200, [{"a": int(t.id), "p": t.price, "q": t.size, "f": int(t.id),
                        "l": int(t.id), "T": t.ms, "m": t.side == SELL, "M": True}
                       for t in page[:limit]])


def serve_candles(symbol: str, params: Mapping[str, str],
                  candles: Callable[[int, int, int], list[Candle]]) -> Reply:
    by_code = {code: seconds for seconds, code in INTERVALS.items()}
    interval = by_code.get(params.get("interval", ""))
    if interval is None:
        return Reply(400, {"code": -1120, "msg": "Invalid interval."})
    limit = min(param_int(params, "limit", 500) or 500, CANDLES_LIMIT)
    start = param_int(params, "startTime", 0) or 0
    end = param_int(params, "endTime", 2**62) or 2**62
    step = interval * 1000
    found = candles(start, min(end + 1, start + limit * step), interval)[:limit]
    return Reply(200, [[c.start_ms, c.open, c.high, c.low, c.close, c.volume or "0",
                        c.start_ms + step - 1, c.quote or "0", c.count, c.buy or "0",
                        dec_text(_quote_buy(c)), "0"] for c in found])


def _quote_buy(candle: Candle) -> Any:
    from decimal import Decimal

    if not candle.volume or Decimal(candle.volume) == 0:
        return Decimal(0)
    return Decimal(candle.quote or 0) * Decimal(candle.buy or 0) / Decimal(candle.volume)
