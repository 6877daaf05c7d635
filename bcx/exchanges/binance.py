"""Binance spot combined streams: ``<sym>@bookTicker`` (bid/ask) and ``<sym>@trade`` (price).

The streams are named in the URL (``/stream?streams=btcusdt@bookTicker/btcusdt@trade``), so
no subscribe frame is sent and no ack comes back. Frames arrive wrapped as
``{"stream": …, "data": …}``; bare payloads (the ``/ws`` endpoint) are read as well.
``aggTrade`` payloads (what the 2021 recording carries) are read like ``trade``.

Spot bookTicker has no event time, so its ticks take the receive time; it also carries the
best bid and ask quantities ``B``/``A``. Every trade frame gives a price tick (the price series)
and a :class:`Trade` at its trade time ``T``, of size ``q``, id ``t`` (aggTrade: id ``a``, whose
``q`` covers the whole aggregate); ``m`` true means the buyer was the maker, so the taker sold.
Trade ids ``t`` (and aggTrade ids ``a``) go up by one per symbol: a jump is a gap.
Binance symbols have no separator; the configured symbols map back exactly, anything else is
split on the longest known quote asset.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from bcx.exchanges.base import FeedProtocol, MalformedFrame, Parsed, Rewrite, Verdict
from bcx.exchanges.common import (
    DECIMAL,
    GapCounter,
    decimal_text,
    field,
    loads,
    optional_decimal,
    request,
)
from bcx.ticks import BUY, SELL, Tick, Trade

STREAMS = ("bookTicker", "trade")
# Quote assets Binance (and Binance.US) list, longest first so USDT wins over USD.
QUOTES = tuple(sorted((
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "USD", "DAI", "PAX", "UST", "VAI",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
    "EUR", "EURI", "AEUR", "GBP", "AUD", "BRL", "TRY", "RUB", "UAH", "NGN", "ZAR", "IDRT",
    "BIDR", "BVND", "BKRW", "JPY", "MXN", "ARS", "COP", "PLN", "RON", "CZK",
), key=len, reverse=True))
# Stream kinds the venue knows (for the replay server's checks).
KNOWN_STREAMS = re.compile(
    r"^([a-z0-9]+)@(bookTicker|trade|aggTrade|ticker|miniTicker|avgPrice|depth(5|10|20)?"
    r"(@100ms|@1000ms)?|kline_\w+)$")
_TIME = re.compile(r'"([ET])":(\d+)')


class Binance(FeedProtocol):
    name: ClassVar[str] = "binance"
    subscribe_deadline: ClassVar[float] = 5.0

    def __init__(self, symbols: list[str] | tuple[str, ...]):
        super().__init__(symbols)
        self._trade_ids = GapCounter()

    def streams(self) -> list[str]:
        return [f"{self.to_native(symbol).lower()}@{kind}"
                for symbol in self.symbols for kind in STREAMS]

    def connect_url(self, base_url: str) -> str:
        parts = urlsplit(base_url)
        path = parts.path.rstrip("/")
        for suffix in ("/stream", "/ws"):
            if path.endswith(suffix):
                path = path[: -len(suffix)]
        return f"{parts.scheme}://{parts.netloc}{path}/stream?streams={'/'.join(self.streams())}"

    def subscribe_frames(self) -> list[str]:
        return []

    def parse(self, raw: str, received_ms: int) -> Parsed:
        msg = loads(raw)
        if not isinstance(msg, dict):
            raise MalformedFrame("expected a JSON object")
        if "stream" in msg:
            data = msg.get("data")
            if not isinstance(data, dict):
                raise MalformedFrame("combined-stream frame without a data object")
            stream = str(msg["stream"])
        else:
            data, stream = msg, ""
        kind = data.get("e")
        if kind in ("trade", "aggTrade"):
            return self._trade(data, kind, received_ms)
        if kind == "bookTicker" or (kind is None and (stream.endswith("@bookTicker") or
                                                     {"u", "b", "a", "s"} <= data.keys())):
            return self._book_ticker(data, received_ms)
        if "result" in msg and "id" in msg:
            return Parsed(keepalive=True)
        if "code" in msg and "msg" in msg:
            return Parsed(error=f"code {msg['code']}: {msg['msg']}")
        return Parsed()

    def _trade(self, data: dict[str, Any], kind: str, received_ms: int) -> Parsed:
        symbol = self.symbol_of(field(data, "s"))
        ms = field(data, "T", int) if "T" in data else field(data, "E", int)
        trade_id = field(data, "t" if kind == "trade" else "a", int)
        price = decimal_text(data.get("p"), "p")
        tick = Tick(self.name, symbol, ms, price=price, seq=trade_id,
                    received_ns=received_ms * 1_000_000)
        parsed = Parsed(ticks=[tick])
        size, maker = data.get("q"), data.get("m")
        # The price series never depended on q and m: a frame without them (not seen from the
        # venue) still gives its price, and no trade.
        if isinstance(maker, bool) and isinstance(size, str) and DECIMAL.fullmatch(size):
            parsed.trades.append(Trade(self.name, symbol, ms, price=price, size=size,
                                       side=SELL if maker else BUY, id=str(trade_id),
                                       received_ns=received_ms * 1_000_000))
        missed = self._trade_ids.observe((symbol, kind), trade_id)
        if missed:
            parsed.gaps.append((symbol, missed))
        return parsed

    def _book_ticker(self, data: dict[str, Any], received_ms: int) -> Parsed:
        symbol = self.symbol_of(field(data, "s"))
        ms = data["T"] if isinstance(data.get("T"), int) else received_ms
        update_id = data.get("u")
        return Parsed(ticks=[Tick(
            self.name, symbol, ms, bid=decimal_text(data.get("b"), "b"),
            ask=decimal_text(data.get("a"), "a"),
            seq=update_id if isinstance(update_id, int) else None,
            received_ns=received_ms * 1_000_000,
            bid_size=optional_decimal(data.get("B"), "B"),
            ask_size=optional_decimal(data.get("A"), "A"))])

    @staticmethod
    def to_native(symbol: str) -> str:
        base, sep, quote = symbol.upper().partition("-")
        if not sep or not base or not quote:
            raise ValueError(f"not a BASE-QUOTE symbol: {symbol!r}")
        return base + quote

    @staticmethod
    def from_native(native: str) -> str:
        text = native.upper()
        for quote in QUOTES:
            if text.endswith(quote) and len(text) > len(quote) and text[:-len(quote)].isalnum():
                return f"{text[:-len(quote)]}-{quote}"
        raise ValueError(f"no known quote asset ends Binance symbol {native!r}")

    # ---- server side ----

    @classmethod
    def check_connect(cls, path: str, known: frozenset[str] | None = None) -> Verdict:
        parts = urlsplit(path)
        if parts.path.rstrip("/").endswith("/stream"):
            names = "/".join(parse_qs(parts.query).get("streams", [])).split("/")
        elif "/ws/" in parts.path:
            names = parts.path.split("/ws/", 1)[1].split("/")
        else:
            names = []
        names = [name for name in names if name]
        if not names:
            return Verdict()
        return _check_streams(names, None, known)

    @classmethod
    def answer(cls, raw: str, known: frozenset[str] | None = None) -> Verdict:
        msg = request(raw)
        if msg is None:
            return _refuse(3, "Invalid JSON: expected a request object", None)
        request_id = msg.get("id")
        method, params = msg.get("method"), msg.get("params", [])
        if method == "SUBSCRIBE":
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _refuse(1, "Invalid value type: expected a list of stream names",
                               request_id)
            verdict = _check_streams(params, request_id, known)
            if not verdict.refused:
                verdict.replies.append(_ok(request_id))
            return verdict
        if method in ("UNSUBSCRIBE", "SET_PROPERTY"):
            return Verdict(replies=[_ok(request_id)])
        if method == "LIST_SUBSCRIPTIONS":
            return Verdict(replies=[json.dumps({"result": [], "id": request_id})])
        return _refuse(2, f"Invalid request: unknown method {method!r}", request_id)

    @classmethod
    def rewrite(cls, raw: str, change: Rewrite) -> str:
        if not change.shift_ms or ('"E":' not in raw and '"T":' not in raw):
            return raw
        return _TIME.sub(lambda m: f'"{m.group(1)}":{int(m.group(2)) + change.shift_ms}', raw)


def _check_streams(names: list[str], request_id: Any, known: frozenset[str] | None) -> Verdict:
    for name in names:
        match = KNOWN_STREAMS.match(name)
        symbol = None
        if match:
            try:
                symbol = Binance.from_native(match.group(1))
            except ValueError:
                symbol = None
        if symbol is None or (known is not None and symbol not in known):
            return _refuse(2, f"Invalid request: invalid stream name {name!r}", request_id)
    return Verdict(subscribed=True)


def _ok(request_id: Any) -> str:
    return json.dumps({"result": None, "id": request_id}, separators=(",", ":"))


def _refuse(code: int, message: str, request_id: Any) -> Verdict:
    frame = json.dumps({"code": code, "msg": message, "id": request_id}, separators=(",", ":"))
    return Verdict(replies=[frame], refused=True)
