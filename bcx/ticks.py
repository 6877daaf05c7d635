"""The normalised tick: what exchange adapters produce and the store writes."""

from __future__ import annotations

from dataclasses import dataclass

# A stored point: (event time in epoch ms, value as the exchange's decimal string).
Point = tuple[int, str]


@dataclass(slots=True)
class Tick:
    """One update of a series: whichever of price, bid and ask the frame carried.

    ``ms`` is the event time in epoch milliseconds (the exchange's timestamp when the frame
    has one, else the receive time). Values are decimal strings, kept verbatim.
    ``seq`` is the protocol's sequence or trade id where it has one; ``received_ns`` is the
    local monotonic-free wall clock (``time.time_ns()``) at receipt, for latency figures.
    """

    exchange: str
    symbol: str
    ms: int
    price: str | None = None
    bid: str | None = None
    ask: str | None = None
    seq: int | None = None
    received_ns: int = 0

    def values(self) -> list[tuple[str, str]]:
        """(field, value) for each field this tick carries."""
        out = []
        if self.price is not None:
            out.append(("price", self.price))
        if self.bid is not None:
            out.append(("bid", self.bid))
        if self.ask is not None:
            out.append(("ask", self.ask))
        return out


def member(ms: int, value: str) -> str:
    """The sorted-set member of a point: ``"<ms>:<value>"``."""
    return f"{ms}:{value}"


def score(ms: int) -> float:
    """The sorted-set score of an event time: epoch seconds, millisecond precision."""
    return ms / 1000


def before(ms: int) -> str:
    """The ZRANGEBYSCORE/ZREMRANGEBYSCORE bound "every score earlier than ``ms``"."""
    return f"({score(ms)!r}"


def parse_member(text: str) -> Point:
    ms, _, value = text.partition(":")
    return int(ms), value
