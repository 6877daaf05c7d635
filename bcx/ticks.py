"""The normalised tick and trade: what exchange adapters produce and the store writes, and the
sorted-set member encodings of both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

# A stored point: (event time in epoch ms, value as the exchange's decimal string).
Point = tuple[int, str]

Side = Literal["buy", "sell"]
BUY: Side = "buy"
SELL: Side = "sell"
_SIDE_CODE = {BUY: "b", SELL: "s"}
_CODE_SIDE: dict[str, Side] = {"b": BUY, "s": SELL}


@dataclass(slots=True)
class Tick:
    """One update of a series: whichever of price, bid and ask the frame carried.

    ``ms`` is the event time in epoch milliseconds (the exchange's timestamp when the frame
    has one, else the receive time). Values are decimal strings, kept verbatim.
    ``seq`` is the protocol's sequence or trade id where it has one; ``received_ns`` is the
    local monotonic-free wall clock (``time.time_ns()``) at receipt, for latency figures.
    ``bid_size``/``ask_size`` are the top-of-book quantities where the venue sends them
    (decimal text, verbatim); they are not series values (see :meth:`sizes`).
    """

    exchange: str
    symbol: str
    ms: int
    price: str | None = None
    bid: str | None = None
    ask: str | None = None
    seq: int | None = None
    received_ns: int = 0
    bid_size: str | None = None
    ask_size: str | None = None

    def values(self) -> list[tuple[str, str]]:
        """(field, value) for each series field (price, bid, ask) this tick carries."""
        out = []
        if self.price is not None:
            out.append(("price", self.price))
        if self.bid is not None:
            out.append(("bid", self.bid))
        if self.ask is not None:
            out.append(("ask", self.ask))
        return out

    def sizes(self) -> list[tuple[str, str]]:
        """(field, quantity) for each top-of-book size this tick carries."""
        out = []
        if self.bid_size is not None:
            out.append(("bid_size", self.bid_size))
        if self.ask_size is not None:
            out.append(("ask_size", self.ask_size))
        return out


@dataclass(slots=True)
class Trade:
    """One trade as the venue reported it.

    ``ms`` is the exchange's trade time in epoch ms; ``price`` and ``size`` are the venue's
    decimal text (``size`` never signed); ``side`` is the TAKER's side; ``id`` is the venue's
    trade id as text (synthesised where the venue has none: Kraken v1, see its adapter).
    """

    exchange: str
    symbol: str
    ms: int
    price: str
    size: str
    side: Side
    id: str
    received_ns: int = 0


class TradeFields(NamedTuple):
    """What a trade member holds (exchange and symbol come from the key)."""

    ms: int
    price: str
    size: str
    side: Side
    id: str


def trade_member(trade: Trade | TradeFields) -> str:
    """The sorted-set member of a trade: ``"<ms>:<price>:<size>:<b|s>:<id>"``.

    The id comes last, so it may hold any character (``:`` included) and round-trips without
    escaping; the other parts never contain ``:``. One trade always gives the same member
    (a re-delivered trade is one member), two trades differ by their id even when time, price,
    size and side are equal. ValueError for parts that would not read back.
    """
    ms = trade.ms
    if not isinstance(ms, int) or isinstance(ms, bool):
        raise ValueError(f"trade time must be an int, got {ms!r}")
    for name in ("price", "size"):
        text = getattr(trade, name)
        if not isinstance(text, str) or not text or ":" in text:
            raise ValueError(f"trade {name} must be decimal text without ':', got {text!r}")
    code = _SIDE_CODE.get(trade.side)
    if code is None:
        raise ValueError(f"trade side must be 'buy' or 'sell', got {trade.side!r}")
    if not isinstance(trade.id, str) or not trade.id:
        raise ValueError(f"trade id must be non-empty text, got {trade.id!r}")
    return f"{ms}:{trade.price}:{trade.size}:{code}:{trade.id}"


def parse_trade_member(text: str) -> TradeFields:
    """The fields of a :func:`trade_member`; ValueError when ``text`` is not one."""
    parts = text.split(":", 4)
    if len(parts) != 5:
        raise ValueError(f"not a trade member: {text!r}")
    ms, price, size, code, trade_id = parts
    side = _CODE_SIDE.get(code)
    if side is None or not price or not size or not trade_id:
        raise ValueError(f"not a trade member: {text!r}")
    return TradeFields(int(ms), price, size, side, trade_id)


def member(ms: int, value: str) -> str:
    """The sorted-set member of a point: ``"<ms>:<value>"``."""
    return f"{ms}:{value}"


def score(ms: int) -> float:
    """The sorted-set score of an event time: epoch seconds, millisecond precision."""
    return ms / 1000


def stamp(ms: int) -> tuple[str, str]:
    """(score, member prefix) of every value stamped ``ms``, as text: the score Redis reads
    as exactly :func:`score` (``"1617647603.425"``: the decimal whose nearest double
    ``ms / 1000`` is) and ``"<ms>:"``, which the value completes into :func:`member`. The
    tracker computes them once per tick, not per value: formatting a float is a tenth of its
    budget per tick."""
    text = str(ms)
    if ms < 1000:
        return repr(ms / 1000), f"{text}:"
    return f"{text[:-3]}.{text[-3:]}", f"{text}:"


def before(ms: int) -> str:
    """The ZRANGEBYSCORE/ZREMRANGEBYSCORE bound "every score earlier than ``ms``"."""
    return f"({score(ms)!r}"


def parse_member(text: str) -> Point:
    ms, _, value = text.partition(":")
    return int(ms), value
