"""The venues' public REST APIs: one small module per venue that builds requests and reads
responses (pure functions, no I/O), the server side of the same endpoints for ``bcx replay``,
and one HTTP client loop (:mod:`bcx.rest.client`) with rate limiting and back-off.

Every venue module exposes the same names (see :class:`Venue`); ``docs/REST.md`` says where
each endpoint, parameter and limit comes from.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bcx.rest.base import Hole, Reply, Request

NAMES = ("coinbase", "binance", "bitfinex", "kraken")

__all__ = ["NAMES", "Hole", "Reply", "Request", "venue"]


def venue(name: str) -> ModuleType:
    """The REST module of an exchange (``bcx.rest.coinbase`` ...)."""
    if name not in NAMES:
        raise ValueError(f"no REST support for {name!r} (one of {', '.join(NAMES)})")
    return importlib.import_module(f"bcx.rest.{name}")
