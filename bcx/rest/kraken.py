"""Kraken REST: ``GET /0/public/Trades?pair=&since=`` (``[price, volume, time, b|s, m|l,
misc, trade_id]``, up to 1000 a call, ``since`` and ``last`` are nanosecond cursors) and ``GET
/0/public/OHLC?pair=&interval=&since=`` (``[time, open, high, low, close, vwap, volume,
count]``, at most the latest 720 candles). Every answer is ``{"error": [...], "result":
{<pair>: [...], "last": ...}}``. See docs/REST.md.

The websocket (v1) gives trades no id; the tracker names one ``"<time text>-<n>"`` (the n-th
trade of that time in the frame), and so does this module for a REST page, so a trade seen
live and fetched again is the same member when the venue writes its time the same way. It
does not always (REST sends a float, the websocket a 6-decimal string), so a time-bounded hole
takes only trades strictly between the two it lies between (bcx.rest.base.Hole.holds)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from bcx.exchanges.base import MalformedFrame
from bcx.rest.base import Hole, Reply, Request, imported, integer, param_int, text
from bcx.rollups import Candle, dec_text
from bcx.ticks import BUY, SELL, Trade

NAME = "kraken"
DEFAULT_URL = "https://api.kraken.com"
# Public calls: about one a second sustained, a small burst.
RATE = (15.0, 1.0)
TRADES_LIMIT = 1000
CANDLES_LIMIT = 720
INTERVALS = {60: 1, 300: 5, 900: 15, 1800: 30, 3600: 60, 14400: 240, 86400: 1440}
_SIDES = {"b": BUY, "s": SELL}
_ALIASES = {"BTC": "XBT"}


def native(symbol: str) -> str:
    base, _, quote = symbol.upper().partition("-")
    return _ALIASES.get(base, base) + _ALIASES.get(quote, quote)


def trades_request(hole: Hole, cursor: str | None) -> Request:
    since = cursor if cursor is not None else str(hole.after_ms * 1_000_000)
    return Request("/0/public/Trades", {"pair": native(hole.symbol), "since": since,
                                        "count": str(TRADES_LIMIT)})


def _result(body: Any) -> tuple[list[Any], Any]:
    if not isinstance(body, dict):
        raise MalformedFrame("expected a JSON object")
    if body.get("error"):
        raise MalformedFrame(f"venue error: {body['error']}")
    result = body.get("result")
    if not isinstance(result, dict):
        raise MalformedFrame("no result")
    rows: Any = next((value for key, value in result.items() if key != "last"), [])
    if not isinstance(rows, list):
        raise MalformedFrame("result rows are not a list")
    return rows, result.get("last")


def read_trades(hole: Hole, body: Any, headers: Mapping[str, str]
                ) -> tuple[list[Trade], str | None]:
    rows, last = _result(body)
    trades: list[Trade] = []
    same_time: dict[str, int] = {}
    for row in rows:
        if not isinstance(row, list) or len(row) < 4 or row[3] not in _SIDES:
            raise MalformedFrame(f"trade {row!r}")
        time_text = text(row[2], "time")
        n = same_time.get(time_text, 0)
        same_time[time_text] = n + 1
        ms = int(Decimal(time_text) * 1000)
        trades.append(Trade(NAME, hole.symbol, ms, price=text(row[0], "price"),
                            size=text(row[1], "volume"), side=_SIDES[row[3]],
                            id=f"{time_text}-{n}"))
    kept = [trade for trade in trades if hole.holds(trade)]
    if not trades or trades[-1].ms > hole.before_ms or last is None:
        return kept, None
    return kept, str(last)


def candles_request(symbol: str, interval_s: int, start_ms: int, end_ms: int) -> Request:
    # ``since`` returns the candles after it: one step before the first bucket wanted.
    return Request("/0/public/OHLC", {"pair": native(symbol),
                                      "interval": str(INTERVALS[interval_s]),
                                      "since": str(start_ms // 1000 - interval_s)})


def read_candles(body: Any) -> list[Candle]:
    rows, _ = _result(body)
    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) < 8:
            raise MalformedFrame(f"candle {row!r}")
        volume, vwap = text(row[6], "volume"), text(row[5], "vwap")
        out.append(imported(Candle(integer(row[0], "time") * 1000, text(row[1], "open"),
                                   text(row[2], "high"), text(row[3], "low"),
                                   text(row[4], "close"), integer(row[7], "count"), volume,
                                   dec_text(Decimal(volume) * Decimal(vwap)), None)))
    return out


# ---- server side (bcx replay) ----

def route(path: str) -> tuple[str, str] | None:
    if path == "/0/public/Trades":
        return "trades", ""
    if path == "/0/public/OHLC":
        return "candles", ""
    return None


def serve_trades(symbol: str, params: Mapping[str, str], trades: Sequence[Trade]) -> Reply:
    since = param_int(params, "since", 0) or 0
    count = min(param_int(params, "count", TRADES_LIMIT) or TRADES_LIMIT, TRADES_LIMIT)
    found = sorted((t for t in trades if t.ms * 1_000_000 > since), key=lambda t: t.ms)[:count]
    last = found[-1].ms * 1_000_000 if found else since
    return Reply(200, {"error": [], "result": {
        # The time as the recorded text (a JSON string; the venue sends a number): a float
        # would change its digits and with them the trade's synthesised id.
        params.get("pair", ""): [[t.price, t.size, t.id.rpartition("-")[0] or str(t.ms / 1000),
                                  "b" if t.side == BUY else "s", "l", "", 0] for t in found],
        "last": str(last)}})


def serve_candles(symbol: str, params: Mapping[str, str],
                  candles: Callable[[int, int, int], list[Candle]]) -> Reply:
    minutes = param_int(params, "interval", 1) or 1
    interval = next((s for s, m in INTERVALS.items() if m == minutes), None)
    if interval is None:
        return Reply(200, {"error": ["EGeneral:Invalid arguments"]})
    step = interval * 1000
    # Kraken keeps the latest 720 candles only, whatever ``since`` asks.
    import time

    now = time.time_ns() // 1_000_000 // step * step
    oldest = now - (CANDLES_LIMIT - 1) * step
    since = (param_int(params, "since", 0) or 0) * 1000
    found = candles(max(oldest, since + step), now + step, interval)
    last = found[-1].start_ms // 1000 if found else since // 1000
    return Reply(200, {"error": [], "result": {params.get("pair", ""): [
        [c.start_ms // 1000, c.open, c.high, c.low, c.close,
         dec_text(Decimal(c.quote or 0) / Decimal(c.volume)) if c.volume and Decimal(c.volume)
         else c.close, c.volume or "0", c.count] for c in found], "last": last}})
