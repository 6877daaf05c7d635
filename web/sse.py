"""The live stream: Server-Sent Events of tick batches (``event: tick``) and trigger events
(``event: alert``) relayed from Redis pub/sub, with keep-alive comments. Each client holds its
own subscription (``bcx.store.channels``), unsubscribed and closed when the client goes away."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis

from bcx.events import is_feed_report
from bcx.keys import Keys
from bcx.query import num
from bcx.store.channels import Channels, Message, Subscription

log = logging.getLogger(__name__)

RETRY_MS = 3000


def frame(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def tick_payload(message: str, wanted: frozenset[str] | None) -> list[dict[str, Any]]:
    """A published batch with its values as numbers, keeping only the wanted series."""
    try:
        batch = json.loads(message)
    except ValueError:
        return []
    out = []
    for item in batch if isinstance(batch, list) else ():
        if not isinstance(item, dict) or (wanted is not None and item.get("series") not in wanted):
            continue
        tick = {"series": item.get("series"), "time": item.get("time")}
        for field in ("price", "bid", "ask"):
            if field in item:
                tick[field] = num(item[field])
        out.append(tick)
    return out


def trade_payload(message: str, wanted: frozenset[str] | None) -> list[dict[str, Any]]:
    """A published trade batch with price and size as numbers, keeping only the wanted
    series."""
    try:
        batch = json.loads(message)
    except ValueError:
        return []
    out = []
    for item in batch if isinstance(batch, list) else ():
        if not isinstance(item, dict) or (wanted is not None and item.get("series") not in wanted):
            continue
        out.append({"series": item.get("series"), "time": item.get("time"),
                    "price": num(item.get("price")), "size": num(item.get("size")),
                    "side": item.get("side"), "id": item.get("id")})
    return out


def alert_payload(message: str, wanted: frozenset[str] | None) -> dict[str, Any] | None:
    try:
        event = json.loads(message)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    if is_feed_report(event):  # it feeds the rules; the rule's event is the alert
        return None
    if wanted is not None and event.get("series") not in wanted:
        return None
    return event


def subscribe(channels: Channels, keys: Keys, timeout: float) -> Subscription:
    """A subscription to the tick and event channels, confirmed by Redis, so anything
    published after the client's first event reaches it."""
    return channels.subscribe(keys.ticks_channel, keys.trades_channel, keys.events_channel,
                              timeout=timeout)


def events(subscription: Subscription, keys: Keys, wanted: frozenset[str] | None,
           keepalive: float) -> Iterator[str]:
    """The SSE body. A client that disconnects makes the server close this generator at its
    next write (at the latest the next keep-alive), which unsubscribes and closes the
    subscription."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        last_write = time.monotonic()
        while True:
            wait = max(0.0, keepalive - (time.monotonic() - last_write))
            message = subscription.get(timeout=wait)
            chunk = _chunk(message, keys, wanted) if message else None
            if chunk is None and time.monotonic() - last_write >= keepalive:
                chunk = ": keep-alive\n\n"
            if chunk is not None:
                yield chunk
                last_write = time.monotonic()
    except redis.RedisError as exc:
        # The client's EventSource reconnects after RETRY_MS; nothing more can be sent now.
        log.warning("SSE stream ends: Redis failed: %s", exc)
    finally:
        subscription.close()


def _chunk(message: Message, keys: Keys, wanted: frozenset[str] | None) -> str | None:
    if message.channel == keys.ticks_channel:
        ticks = tick_payload(message.data, wanted)
        return frame("tick", ticks) if ticks else None
    if message.channel == keys.trades_channel:
        trades = trade_payload(message.data, wanted)
        return frame("trade", trades) if trades else None
    if message.channel == keys.events_channel:
        event = alert_payload(message.data, wanted)
        return frame("alert", event) if event is not None else None
    return None
