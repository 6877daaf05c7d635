"""Kraken spot websocket v1: the ``ticker`` and ``trade`` subscriptions.

v1 pairs are ``BASE/QUOTE`` in Kraken's own codes (``XBT`` is BTC, ``XDG`` is DOGE). A ticker
frame gives bid ``b[0]``, ask ``a[0]`` and last trade price ``c[0]`` with no time, so its tick
takes the receive time; ``b[2]``/``a[2]`` (lot volumes, decimal text) are the top-of-book
sizes. A trade frame batches trades ``[price, volume, time, side, orderType, misc]``, each with
its own time (epoch seconds as text) and the taker's side ``b``/``s``.

The price series comes from the ticker's ``c[0]`` for pairs whose ticker subscription is
confirmed on this connection; for other pairs (a trade-only connection, such as the
``kraken_trade`` recording) each trade also gives a price tick at its own time, as before.

v1 has no sequence numbers or trade ids, so no gap can be detected, and each trade's id is
synthesised from the frame: ``"<time text>-<n>"``, where ``n`` counts the earlier entries of
the same frame with the same time text (0 for almost every trade). The time text has
microseconds, so equal ids would need two frames with trades in one microsecond.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from bcx.exchanges.base import FeedProtocol, MalformedFrame, Parsed, Rewrite, Verdict
from bcx.exchanges.common import decimal_text, loads, request
from bcx.ticks import BUY, SELL, Side, Tick, Trade

# Kraken's own currency codes -> the common ones (documented by the venue).
ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_NATIVE_ALIASES = {common: own for own, common in ALIASES.items()}
KNOWN_SUBSCRIPTIONS = frozenset({"ticker", "trade", "book", "spread", "ohlc", "*"})
_PAIR = re.compile(r"^[A-Z0-9]{2,10}/[A-Z0-9]{2,10}$")
_MS = Decimal(1000)
# The subscriptions this client makes (v1 takes one name per subscribe frame).
CHANNELS = ("ticker", "trade")
_SIDES: dict[str, Side] = {"b": BUY, "s": SELL}


class Kraken(FeedProtocol):
    name: ClassVar[str] = "kraken"
    subscribe_deadline: ClassVar[float] = 10.0

    def __init__(self, symbols: list[str] | tuple[str, ...]):
        super().__init__(symbols)
        # Pairs whose ticker subscription the venue confirmed: their price comes from it.
        self._tickers: set[str] = set()

    def subscribe_frames(self) -> list[str]:
        pairs = [self.to_native(symbol) for symbol in self.symbols]
        return [json.dumps({"event": "subscribe", "pair": pairs,
                            "subscription": {"name": name}}, separators=(",", ":"))
                for name in CHANNELS]

    def parse(self, raw: str, received_ms: int) -> Parsed:
        msg = loads(raw)
        if isinstance(msg, dict):
            return self._event(msg)
        if not isinstance(msg, list) or len(msg) < 4:
            raise MalformedFrame("expected an event object or a channel array")
        channel, pair = msg[-2], msg[-1]
        if not isinstance(channel, str) or not isinstance(pair, str):
            raise MalformedFrame("channel array without channel name and pair")
        if channel == "ticker":
            return Parsed(ticks=[self._ticker(self.symbol_of(pair), msg[1], received_ms)])
        if channel == "trade":
            symbol = self.symbol_of(pair)
            trades = self._trades(symbol, msg[1], received_ms)
            if symbol in self._tickers:
                return Parsed(trades=trades)
            ticks = [Tick(self.name, symbol, trade.ms, price=trade.price,
                          received_ns=trade.received_ns) for trade in trades]
            return Parsed(ticks=ticks, trades=trades)
        return Parsed()

    def _ticker(self, symbol: str, data: Any, received_ms: int) -> Tick:
        if not isinstance(data, dict):
            raise MalformedFrame("ticker payload is not an object")
        return Tick(self.name, symbol, received_ms, price=_first(data, "c"),
                    bid=_first(data, "b"), ask=_first(data, "a"),
                    received_ns=received_ms * 1_000_000,
                    bid_size=_lot_volume(data, "b"), ask_size=_lot_volume(data, "a"))

    def _trades(self, symbol: str, entries: Any, received_ms: int) -> list[Trade]:
        if not isinstance(entries, list):
            raise MalformedFrame("trade payload is not a list")
        trades = []
        same_time: dict[str, int] = {}
        for entry in entries:
            if not isinstance(entry, list) or len(entry) < 4:
                raise MalformedFrame(f"trade entry {entry!r}")
            ms = _seconds_to_ms(entry[2])
            side = _SIDES.get(entry[3])
            if side is None:
                raise MalformedFrame(f"trade side: {entry[3]!r}")
            time_text = entry[2]
            n = same_time.get(time_text, 0)
            same_time[time_text] = n + 1
            trades.append(Trade(self.name, symbol, ms,
                                price=decimal_text(entry[0], "trade price"),
                                size=decimal_text(entry[1], "trade volume"), side=side,
                                id=f"{time_text}-{n}", received_ns=received_ms * 1_000_000))
        return trades

    def _event(self, msg: dict[str, Any]) -> Parsed:
        event = msg.get("event")
        if event == "ping":
            pong = {"event": "pong"} | ({"reqid": msg["reqid"]} if "reqid" in msg else {})
            return Parsed(replies=[json.dumps(pong, separators=(",", ":"))], keepalive=True)
        if event == "subscriptionStatus" and msg.get("status") == "error":
            return Parsed(error=f"{msg.get('pair')}: {msg.get('errorMessage')}")
        if (event == "subscriptionStatus" and msg.get("status") == "subscribed"
                and msg.get("channelName") == "ticker" and isinstance(msg.get("pair"), str)):
            self._tickers.add(self.symbol_of(msg["pair"]))
        if event == "error":
            return Parsed(error=str(msg.get("errorMessage")))
        if event in ("heartbeat", "systemStatus", "subscriptionStatus", "pong"):
            return Parsed(keepalive=True)
        return Parsed()

    @staticmethod
    def to_native(symbol: str) -> str:
        base, sep, quote = symbol.upper().partition("-")
        if not sep or not base or not quote:
            raise ValueError(f"not a BASE-QUOTE symbol: {symbol!r}")
        return f"{_NATIVE_ALIASES.get(base, base)}/{_NATIVE_ALIASES.get(quote, quote)}"

    @staticmethod
    def from_native(native: str) -> str:
        if not _PAIR.match(native.upper()):
            raise ValueError(f"not a Kraken v1 pair: {native!r}")
        base, _, quote = native.upper().partition("/")
        return f"{ALIASES.get(base, base)}-{ALIASES.get(quote, quote)}"

    # ---- server side ----

    @classmethod
    def is_greeting(cls, raw: str) -> bool:
        return raw.startswith("{") and '"event":"systemStatus"' in raw

    @classmethod
    def answer(cls, raw: str, known: frozenset[str] | None = None) -> Verdict:
        msg = request(raw)
        if msg is None:
            return _refuse("Malformed request", None, None)
        event = msg.get("event")
        if event == "ping":
            pong = {"event": "pong"} | ({"reqid": msg["reqid"]} if "reqid" in msg else {})
            return Verdict(replies=[json.dumps(pong, separators=(",", ":"))])
        if event == "unsubscribe":
            return Verdict()
        if event != "subscribe":
            return _refuse(f"Unsupported event {event!r}", None, None)
        subscription = msg.get("subscription")
        name = subscription.get("name") if isinstance(subscription, dict) else None
        if name not in KNOWN_SUBSCRIPTIONS:
            return _refuse("Subscription name invalid", None, subscription)
        pairs = msg.get("pair")
        if not isinstance(pairs, list) or not pairs:
            return _refuse("Pair(s) not found", None, subscription)
        refusals = [_pair_problem(pair, known) for pair in pairs]
        replies = [_error_frame(problem, pair, subscription)
                   for pair, problem in zip(pairs, refusals, strict=True) if problem]
        if replies:
            return Verdict(replies=replies, refused=True)
        return Verdict(subscribed=True)

    @classmethod
    def rewrite(cls, raw: str, change: Rewrite) -> str:
        if not change.shift_ms or not raw.endswith('"]') or '"trade",' not in raw:
            return raw
        msg = json.loads(raw)
        shift = Decimal(change.shift_ms) / _MS
        for trade in msg[1]:
            trade[2] = f"{Decimal(trade[2]) + shift:.6f}"
        return json.dumps(msg, separators=(",", ":"))


def _first(data: dict[str, Any], key: str) -> str:
    values = data.get(key)
    if not isinstance(values, list) or not values:
        raise MalformedFrame(f"ticker field {key!r}: {values!r}")
    return decimal_text(values[0], f"ticker {key}[0]")


def _lot_volume(data: dict[str, Any], key: str) -> str | None:
    """``b[2]``/``a[2]``, the best bid/ask lot volume as decimal text, when the frame has it."""
    values = data[key]
    return decimal_text(values[2], f"ticker {key}[2]") if len(values) > 2 else None


def _seconds_to_ms(text: Any) -> int:
    """Kraken's ``"1617666461.465618"`` (epoch seconds as a string) -> epoch ms, exactly."""
    try:
        return int(Decimal(text) * _MS)
    except (InvalidOperation, TypeError, ValueError):
        raise MalformedFrame(f"trade time: {text!r}") from None


def _pair_problem(pair: Any, known: frozenset[str] | None) -> str | None:
    if not isinstance(pair, str) or "/" not in pair:
        return f"Currency pair not in ISO 4217-A3 format {pair}"
    if not _PAIR.match(pair) or (known is not None and Kraken.from_native(pair) not in known):
        return f"Currency pair not supported {pair}"
    return None


def _error_frame(message: str, pair: Any, subscription: Any) -> str:
    frame: dict[str, Any] = {"errorMessage": message, "event": "subscriptionStatus"}
    if pair is not None:
        frame["pair"] = pair
    frame["status"] = "error"
    if subscription is not None:
        frame["subscription"] = subscription
    return json.dumps(frame, separators=(",", ":"))


def _refuse(message: str, pair: Any, subscription: Any) -> Verdict:
    return Verdict(replies=[_error_frame(message, pair, subscription)], refused=True)
