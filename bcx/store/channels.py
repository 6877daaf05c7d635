"""Pub/sub: subscriptions confirmed by Redis before use, and publishing a text.

A Redis Cluster client subscribes and publishes too (PUBLISH from any node reaches the
subscribers on every node); PUBLISH never goes into a pipeline or transaction (a cluster
client refuses it there).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import redis

from bcx.keys import Keys


@dataclass(frozen=True)
class Message:
    channel: str
    data: str


class Subscription:
    """One pub/sub connection subscribed to some channels. ``close()`` is idempotent."""

    def __init__(self, pubsub: Any):
        self._pubsub = pubsub
        self._closed = False

    def get(self, timeout: float) -> Message | None:
        """The next published message, waiting up to ``timeout`` seconds; None when none came
        (or only a subscription notice did)."""
        message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if not message or message.get("type") != "message":
            return None
        return Message(message["channel"], message["data"])

    def close(self) -> None:
        """Unsubscribe (if Redis is still there) and release the connection."""
        if self._closed:
            return  # a closed PubSub would open a new connection to unsubscribe
        self._closed = True
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.unsubscribe()
        self._pubsub.close()


class Channels:
    """The pub/sub channels: ``keys.ticks_channel``, ``events_channel``,
    ``rules_changed_channel``."""

    def __init__(self, connection: redis.Redis, keys: Keys):
        self.connection = connection
        self.keys = keys

    def subscribe(self, *channels: str, timeout: float) -> Subscription:
        """A subscription to ``channels``, returned only once Redis has confirmed every one,
        so anything published after this returns reaches it. Raises ``redis.TimeoutError``
        when the confirmations do not come within ``timeout`` seconds."""
        pubsub = self.connection.pubsub()
        try:
            pubsub.subscribe(*channels)
            deadline = time.monotonic() + timeout
            waiting = set(channels)
            while waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.TimeoutError("no subscribe confirmation from Redis")
                message = pubsub.get_message(timeout=remaining)
                if message and message["type"] == "subscribe":
                    waiting.discard(message["channel"])
        except BaseException:
            pubsub.close()
            raise
        return Subscription(pubsub)

    def publish(self, channel: str, text: str) -> int:
        """PUBLISH ``text`` (never inside a pipeline); how many subscribers got it."""
        return int(self.connection.publish(channel, text))
