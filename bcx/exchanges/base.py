"""The contract between exchange adapters and the tracker / replay server.

An adapter module owns one venue's wire protocol and nothing else: no sockets, no Redis.
The tracker creates one :class:`FeedProtocol` per connection (it holds per-connection state
such as Bitfinex chanIds and the last sequence numbers) and feeds it every text frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from bcx.ticks import Tick


class MalformedFrame(ValueError):
    """A frame that claims to be data of ours but cannot be read. Counted and logged by the
    caller; never fatal."""


@dataclass
class Parsed:
    """What one frame meant."""

    ticks: list[Tick] = field(default_factory=list)
    # Frames to send back at once (answers to application-level pings).
    replies: list[str] = field(default_factory=list)
    # (symbol, number of missed sequence numbers / trade ids) detected by this frame.
    gaps: list[tuple[str, int]] = field(default_factory=list)
    # The venue refused something (e.g. a subscription); logged by the tracker.
    error: str | None = None
    # True for frames that prove the feed is alive but carry no ticks (heartbeats, acks).
    keepalive: bool = False


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
