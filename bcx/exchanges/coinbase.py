"""Coinbase Exchange feed (ex-Coinbase Pro): the ``ticker``, ``matches`` and ``heartbeat`` channels.

Products are already normalised ``BASE-QUOTE``. A ticker frame carries the last trade price,
the best bid and ask (and, since about 2022, their sizes) and the trade's own time: it feeds
the price, bid and ask series. ``match`` frames (and the one ``last_match`` per product on
subscribing) carry every trade: they feed the trades. A match's ``side`` is the MAKER order's
side, so the taker's is the opposite.

``trade_id`` goes up by one per trade of a product, so a jump is a gap. The ticker skips
trades when busy (updates are batched during cascades), so once ``matches`` is subscribed for
a product (its ack lists it, or a match of it arrived) only matches count gaps; before that
tickers do. Both feed one counter per product, so a trade seen twice is never counted twice.
A heartbeat's ``last_trade_id`` is checked against the same counter, so missed trades show
before the next one arrives.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from bcx.exchanges.base import FeedProtocol, MalformedFrame, Parsed, Rewrite, Verdict
from bcx.exchanges.common import (
    GapCounter,
    decimal_text,
    field,
    iso_to_ms,
    loads,
    ms_to_iso,
    optional_decimal,
    request,
)
from bcx.ticks import BUY, SELL, Tick, Trade

CHANNELS = ("ticker", "heartbeat", "matches")
# A match's side is the maker's; the taker took the other one.
_TAKER = {"buy": SELL, "sell": BUY}
# Channels the venue knows; a subscription to anything else is refused.
KNOWN_CHANNELS = frozenset({"ticker", "heartbeat", "matches", "level2", "level2_batch", "full",
                            "status", "ticker_batch", "auctionfeed", "rfq_matches", "level3"})
_PRODUCT = re.compile(r"^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$")
_TIME = re.compile(r'"time":"([^"]+)"')


class Coinbase(FeedProtocol):
    name: ClassVar[str] = "coinbase"
    subscribe_deadline: ClassVar[float] = 5.0

    def __init__(self, symbols: list[str] | tuple[str, ...]):
        super().__init__(symbols)
        self._trade_ids = GapCounter()
        # Products whose gaps are counted on matches rather than on tickers.
        self._matched: set[str] = set()

    def subscribe_frames(self) -> list[str]:
        products = [self.to_native(symbol) for symbol in self.symbols]
        return [json.dumps({"type": "subscribe", "product_ids": products,
                            "channels": list(CHANNELS)}, separators=(",", ":"))]

    def parse(self, raw: str, received_ms: int) -> Parsed:
        msg = loads(raw)
        if not isinstance(msg, dict):
            raise MalformedFrame("expected a JSON object")
        kind = msg.get("type")
        if kind == "ticker":
            return self._ticker(msg, received_ms)
        if kind in ("match", "last_match"):
            return self._match(msg, received_ms)
        if kind == "heartbeat":
            return self._heartbeat(msg)
        if kind == "subscriptions":
            self._note_matches(msg)
            return Parsed(keepalive=True)
        if kind == "error":
            return Parsed(error=f"{msg.get('message')}: {msg.get('reason')}")
        return Parsed()

    def _ticker(self, msg: dict[str, Any], received_ms: int) -> Parsed:
        symbol = self.symbol_of(field(msg, "product_id"))
        ms = iso_to_ms(msg["time"]) if "time" in msg else received_ms
        tick = Tick(self.name, symbol, ms, received_ns=received_ms * 1_000_000)
        if msg.get("price") is not None:
            tick.price = decimal_text(msg["price"], "price")
        if msg.get("best_bid") is not None:
            tick.bid = decimal_text(msg["best_bid"], "best_bid")
        if msg.get("best_ask") is not None:
            tick.ask = decimal_text(msg["best_ask"], "best_ask")
        if tick.price is None and tick.bid is None and tick.ask is None:
            raise MalformedFrame("ticker without price, best_bid or best_ask")
        tick.bid_size = optional_decimal(msg.get("best_bid_size"), "best_bid_size")
        tick.ask_size = optional_decimal(msg.get("best_ask_size"), "best_ask_size")
        parsed = Parsed(ticks=[tick])
        trade_id = msg.get("trade_id")
        if isinstance(trade_id, int) and not isinstance(trade_id, bool):
            tick.seq = trade_id
            missed = 0 if symbol in self._matched else self._trade_ids.observe(symbol, trade_id)
            if missed:
                parsed.gaps.append((symbol, missed))
        return parsed

    def _match(self, msg: dict[str, Any], received_ms: int) -> Parsed:
        symbol = self.symbol_of(field(msg, "product_id"))
        trade_id = field(msg, "trade_id", int)
        maker = msg.get("side")
        if maker not in _TAKER:
            raise MalformedFrame(f"match side: {maker!r}")
        trade = Trade(self.name, symbol, iso_to_ms(msg.get("time")),
                      price=decimal_text(msg.get("price"), "price"),
                      size=decimal_text(msg.get("size"), "size"), side=_TAKER[maker],
                      id=str(trade_id), received_ns=received_ms * 1_000_000)
        self._matched.add(symbol)
        missed = self._trade_ids.observe(symbol, trade_id)
        return Parsed(trades=[trade], gaps=[(symbol, missed)] if missed else [])

    def _note_matches(self, msg: dict[str, Any]) -> None:
        """Products the ack says ``matches`` now covers: their gaps are counted on matches."""
        channels = msg.get("channels")
        for channel in channels if isinstance(channels, list) else ():
            if not isinstance(channel, dict) or channel.get("name") != "matches":
                continue
            products = channel.get("product_ids")
            for product in products if isinstance(products, list) else ():
                if isinstance(product, str):
                    try:
                        self._matched.add(self.symbol_of(product))
                    except MalformedFrame:
                        continue

    def _heartbeat(self, msg: dict[str, Any]) -> Parsed:
        """A heartbeat's ``last_trade_id`` reveals missed tickers before the next one comes
        (and on a quiet product, when none comes). 0 is what the venue sometimes sends for
        "unknown": it is no trade id."""
        parsed = Parsed(keepalive=True)
        trade_id, product = msg.get("last_trade_id"), msg.get("product_id")
        if (isinstance(trade_id, int) and not isinstance(trade_id, bool) and trade_id > 0
                and isinstance(product, str)):
            symbol = self.symbol_of(product)
            missed = self._trade_ids.observe_before(symbol, trade_id)
            if missed:
                parsed.gaps.append((symbol, missed))
        return parsed

    @staticmethod
    def to_native(symbol: str) -> str:
        return symbol.upper()

    @staticmethod
    def from_native(native: str) -> str:
        product = native.upper()
        if not _PRODUCT.match(product):
            raise ValueError(f"not a Coinbase product id: {native!r}")
        return product

    # ---- server side ----

    @classmethod
    def answer(cls, raw: str, known: frozenset[str] | None = None) -> Verdict:
        msg = request(raw)
        if msg is None:
            return _refuse("Malformed JSON", "The message is not valid JSON")
        if msg.get("type") not in ("subscribe", "unsubscribe"):
            return _refuse("Failed to subscribe", "Type has to be either subscribe or unsubscribe")
        if msg["type"] == "unsubscribe":
            return Verdict()
        problem = _subscription_problem(msg, known)
        if problem:
            return _refuse("Failed to subscribe", problem)
        return Verdict(subscribed=True)

    @classmethod
    def rewrite(cls, raw: str, change: Rewrite) -> str:
        if not change.shift_ms or '"time":"' not in raw:
            return raw
        return _TIME.sub(lambda m: f'"time":"{_shift_iso(m.group(1), change.shift_ms)}"', raw)


def _shift_iso(text: str, shift_ms: int) -> str:
    try:
        ms = iso_to_ms(text)
    except MalformedFrame:
        return text
    digits = len(text.rstrip("Z").rpartition(".")[2]) if "." in text else 0
    return ms_to_iso(ms + shift_ms, min(digits, 6))


def _subscription_problem(msg: dict[str, Any], known: frozenset[str] | None) -> str | None:
    """Why a subscribe request is refused, in the venue's words; None when it is valid."""
    top = msg.get("product_ids", [])
    channels = msg.get("channels")
    if not isinstance(top, list) or not isinstance(channels, list) or not channels:
        return "You must specify at least one channel"
    name: str | None
    for channel in channels:
        if isinstance(channel, str):
            name, products = channel, top
        elif isinstance(channel, dict):
            name, products = channel.get("name"), channel.get("product_ids", top)
        else:
            return f"{channel!r} is not a valid channel"
        if name not in KNOWN_CHANNELS:
            return f"{name} is not a valid channel"
        if not isinstance(products, list) or not products:
            return f"You need to specify at least one product ID for channel {name}"
        for product in products:
            if not isinstance(product, str) or not _PRODUCT.match(product) or (
                    known is not None and product not in known):
                return f"{product} is not a valid product"
    return None


def _refuse(message: str, reason: str) -> Verdict:
    frame = json.dumps({"type": "error", "message": message, "reason": reason},
                       separators=(",", ":"))
    return Verdict(replies=[frame], refused=True)
