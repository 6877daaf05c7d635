"""Coinbase Exchange REST: ``GET /products/<id>/trades`` (newest first, cursor-paged by trade
id with ``after``/``before`` and the ``CB-AFTER``/``CB-BEFORE`` headers, at most 1000 a page)
and ``GET /products/<id>/candles`` (``[time, low, high, open, close, volume]`` newest first,
at most 300 a request, granularity 60/300/900/3600/21600/86400 s). See docs/REST.md."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bcx.exchanges.base import MalformedFrame
from bcx.exchanges.common import iso_to_ms, ms_to_iso
from bcx.rest.base import Hole, Reply, Request, imported, integer, param_int, rows, text
from bcx.rollups import Candle
from bcx.ticks import BUY, SELL, Trade

NAME = "coinbase"
DEFAULT_URL = "https://api.exchange.coinbase.com"
# Public endpoints: 10 requests a second per IP, bursts of 15 (token bucket: capacity, rate).
RATE = (15.0, 10.0)
TRADES_LIMIT = 1000
CANDLES_LIMIT = 300
GRANULARITIES = (60, 300, 900, 3600, 21600, 86400)
# The side of a REST trade is the maker's, as in the websocket's matches.
_TAKER = {"buy": SELL, "sell": BUY}
_MAKER = {BUY: "sell", SELL: "buy"}


def trades_request(hole: Hole, cursor: str | None) -> Request:
    """The next page walking down from the trade after the hole: ``after`` = an id returns
    the older trades below it."""
    after = cursor if cursor is not None else hole.before_id
    return Request(f"/products/{hole.symbol}/trades",
                   {"after": after, "limit": str(TRADES_LIMIT)})


def read_trades(hole: Hole, body: Any, headers: Mapping[str, str]
                ) -> tuple[list[Trade], str | None]:
    """The page's trades inside the hole and the cursor of the next page (None: done)."""
    if not isinstance(body, list):
        raise MalformedFrame(f"trades: expected a list, got {type(body).__name__}")
    trades = []
    for entry in body:
        if not isinstance(entry, dict) or entry.get("side") not in _TAKER:
            raise MalformedFrame(f"trade entry {entry!r}")
        trade_id = integer(entry.get("trade_id"), "trade_id")
        trades.append(Trade(NAME, hole.symbol, iso_to_ms(entry.get("time")),
                            price=text(entry.get("price"), "price"),
                            size=text(entry.get("size"), "size"),
                            side=_TAKER[entry["side"]], id=str(trade_id)))
    if not trades:
        return [], None
    lowest = min(int(trade.id) for trade in trades)
    ids = hole.numeric()
    done = ids is None or lowest <= ids[0] + 1 or len(trades) < TRADES_LIMIT
    cursor = headers.get("CB-AFTER") or headers.get("cb-after") or str(lowest)
    return [trade for trade in trades if hole.holds(trade)], None if done else cursor


def candles_request(symbol: str, interval_s: int, start_ms: int, end_ms: int) -> Request:
    """One request for the buckets from ``start_ms`` (at most CANDLES_LIMIT, before end_ms)."""
    step = interval_s * 1000
    last = min(end_ms - step, start_ms + (CANDLES_LIMIT - 1) * step)
    return Request(f"/products/{symbol}/candles",
                   {"granularity": str(interval_s), "start": ms_to_iso(start_ms, 0),
                    "end": ms_to_iso(last, 0)})


def read_candles(body: Any) -> list[Candle]:
    out = []
    for row in rows(body, "candle", 6):
        time_s, low, high, open_, close, volume = row[:6]
        out.append(imported(Candle(integer(time_s, "time") * 1000, text(open_, "open"),
                                   text(high, "high"), text(low, "low"), text(close, "close"),
                                   0, text(volume, "volume"), None, None)))
    return sorted(out, key=lambda c: c.start_ms)


# ---- server side (bcx replay) ----

def route(path: str) -> tuple[str, str] | None:
    """("trades" | "candles", product) of a request path, None for another path."""
    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "products" and parts[2] in ("trades", "candles"):
        return parts[2], parts[1]
    return None


def serve_trades(symbol: str, params: Mapping[str, str], trades: Sequence[Trade]) -> Reply:
    limit = min(param_int(params, "limit", TRADES_LIMIT) or TRADES_LIMIT, TRADES_LIMIT)
    after, before = param_int(params, "after"), param_int(params, "before")
    ordered = sorted(trades, key=lambda t: int(t.id), reverse=True)
    if after is not None:
        page = [t for t in ordered if int(t.id) < after][:limit]
    elif before is not None:
        page = [t for t in ordered if int(t.id) > before][-limit:]
    else:
        page = ordered[:limit]
    headers = {}
    if page:
        headers = {"CB-BEFORE": page[0].id, "CB-AFTER": page[-1].id}
    return Reply(200, [{"time": ms_to_iso(t.ms), "trade_id": int(t.id), "price": t.price,
                        "size": t.size, "side": _MAKER[t.side]} for t in page], headers)


def serve_candles(symbol: str, params: Mapping[str, str],
                  candles: Callable[[int, int, int], list[Candle]]) -> Reply:
    granularity = param_int(params, "granularity", 60) or 60
    if granularity not in GRANULARITIES:
        return Reply(400, {"message": "Unsupported granularity"})
    try:
        start = iso_to_ms(params["start"])
        end = iso_to_ms(params["end"])
    except (KeyError, MalformedFrame):
        return Reply(400, {"message": "start and end are required"})
    step = granularity * 1000
    if (end - start) // step + 1 > CANDLES_LIMIT:
        return Reply(400, {"message": "granularity too small for the requested time range. "
                                      "Count of aggregations requested exceeds 300"})
    found = candles(start, end + 1, granularity)
    return Reply(200, [[c.start_ms // 1000, float(c.low), float(c.high), float(c.open),
                        float(c.close), float(c.volume or 0)] for c in reversed(found)])
