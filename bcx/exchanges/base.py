"""The contract between exchange adapters and the tracker / replay server.

An adapter module owns one venue's wire protocol and nothing else: no sockets, no Redis.
The tracker creates one :class:`FeedProtocol` per connection (it holds per-connection state
such as Bitfinex chanIds and the last sequence numbers) and feeds it every text frame.

The same class also knows the server side of its protocol (class methods, no state): which
frames greet a new connection, what the venue answers to a client's frame (:class:`Verdict`)
and which fields carry time, so the replay server can act as a local exchange.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from bcx.ticks import Tick, Trade

# The symbol of a gap that belongs to the connection rather than to one series (a Bitfinex
# sequence jump revealed by a frame of a channel we did not subscribe).
ANY_SYMBOL = "*"


class MalformedFrame(ValueError):
    """A frame that claims to be data of ours but cannot be read. Counted and logged by the
    caller; never fatal."""


@dataclass
class Parsed:
    """What one frame meant."""

    ticks: list[Tick] = field(default_factory=list)
    # Every trade the frame reported, each once per connection (the venue's duplicates, such
    # as Bitfinex te/tu, are dropped by the adapter). Independent of ``ticks``: which frames
    # feed the price series does not change with the trades channel.
    trades: list[Trade] = field(default_factory=list)
    # Frames to send back at once (answers to application-level pings).
    replies: list[str] = field(default_factory=list)
    # (symbol, number of missed sequence numbers / trade ids) detected by this frame.
    gaps: list[tuple[str, int]] = field(default_factory=list)
    # The venue refused something (e.g. a subscription); logged by the tracker.
    error: str | None = None
    # True for frames that prove the feed is alive but carry no ticks (heartbeats, acks).
    keepalive: bool = False
    # The venue asks the client to reconnect (e.g. Bitfinex info 20051); says why.
    reconnect: str | None = None


@dataclass
class Verdict:
    """What a venue (the replay server) does with one frame a client sent."""

    # Frames to send back: the venue's error frame, a pong, a SUBSCRIBE result.
    replies: list[str] = field(default_factory=list)
    # True when the frame was a valid subscription: market data may now flow.
    subscribed: bool = False
    # True when the frame was refused (``replies`` then holds the venue's error frame).
    refused: bool = False


@dataclass(frozen=True)
class Rewrite:
    """How a looping replay changes a recorded frame so it looks live: add ``shift_ms`` to
    every time the frame carries and ``seq_offset`` to its sequence number, if any."""

    shift_ms: int = 0
    seq_offset: int = 0


class FeedProtocol(ABC):
    """One connection's view of a venue's protocol."""

    name: ClassVar[str]
    # Seconds the venue allows between connecting and subscribing.
    subscribe_deadline: ClassVar[float] = 5.0

    def __init__(self, symbols: Sequence[str]):
        self.symbols = tuple(symbols)

    def connect_url(self, base_url: str) -> str:
        """The URL to open for these symbols (Binance names its streams in the URL)."""
        return base_url

    @abstractmethod
    def subscribe_frames(self) -> list[str]:
        """Frames to send right after connecting."""

    @abstractmethod
    def parse(self, raw: str, received_ms: int) -> Parsed:
        """Read one text frame. Unknown message types give an empty ``Parsed``; frames that
        should be data but are broken raise :class:`MalformedFrame`."""

    @staticmethod
    @abstractmethod
    def to_native(symbol: str) -> str:
        """Normalised ``BASE-QUOTE`` -> the venue's symbol."""

    @staticmethod
    @abstractmethod
    def from_native(native: str) -> str:
        """The venue's symbol -> normalised ``BASE-QUOTE``."""

    def symbol_of(self, native: str) -> str:
        """The normalised symbol of a native one seen in a frame: the configured symbol it
        stands for when there is one (exact, even where ``from_native`` must guess), else
        ``from_native``. A name that cannot be read makes the frame malformed. (Ticks of a
        symbol not configured are read, then refused by the tracker's gate: ``gate.py``.)"""
        by_native: dict[str, str] | None = self.__dict__.get("_by_native")
        if by_native is None:
            by_native = {self.to_native(symbol): symbol for symbol in self.symbols}
            self.__dict__["_by_native"] = by_native
        symbol = by_native.get(native)
        if symbol is not None:
            return symbol
        try:
            symbol = self.from_native(native)
        except ValueError as exc:
            raise MalformedFrame(f"unknown symbol {native!r}: {exc}") from None
        by_native[native] = symbol
        return symbol

    # ---- server side (used by bcx.replay; no per-connection state) ----

    @classmethod
    def is_greeting(cls, raw: str) -> bool:
        """True for frames the venue sends unprompted when a connection opens
        (Bitfinex ``info``, Kraken ``systemStatus``)."""
        return False

    @classmethod
    def check_connect(cls, path: str, known: frozenset[str] | None = None) -> Verdict:
        """The venue's view of the request path (Binance names its streams there).
        ``known``: normalised symbols the venue lists; None accepts any well-formed symbol."""
        return Verdict()

    @classmethod
    def answer(cls, raw: str, known: frozenset[str] | None = None) -> Verdict:
        """The venue's answer to one client frame: subscriptions are checked (a refused one
        gets the venue's own error frame), application pings answered. Venues that do not
        check accept every frame as a subscription."""
        return Verdict(subscribed=True)

    @classmethod
    def rewrite(cls, raw: str, change: Rewrite) -> str:
        """``raw`` with its times shifted and its sequence number offset (see Rewrite)."""
        return raw

    @classmethod
    def frame_seq(cls, raw: str) -> int | None:
        """The per-connection sequence number a frame carries, if the protocol has one
        (Bitfinex SEQ_ALL); a looping replay offsets it to stay contiguous."""
        return None
