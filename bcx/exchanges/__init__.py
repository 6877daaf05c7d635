"""The exchange adapters by name: ``get("kraken")`` is the :class:`FeedProtocol` class that
speaks Kraken's websocket protocol (client side for the tracker, server side for replay)."""

from __future__ import annotations

from bcx.exchanges.base import FeedProtocol
from bcx.exchanges.binance import Binance
from bcx.exchanges.bitfinex import Bitfinex
from bcx.exchanges.coinbase import Coinbase
from bcx.exchanges.kraken import Kraken

_ADAPTERS: dict[str, type[FeedProtocol]] = {
    cls.name: cls for cls in (Coinbase, Binance, Bitfinex, Kraken)
}
NAMES: tuple[str, ...] = tuple(_ADAPTERS)


def get(name: str) -> type[FeedProtocol]:
    """The adapter class of exchange ``name``; KeyError names the known ones."""
    try:
        return _ADAPTERS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown exchange {name!r}; known: {', '.join(NAMES)}") from None
