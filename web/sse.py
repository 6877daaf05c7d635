"""The live stream: Server-Sent Events of tick batches (``event: tick``) and trigger events
(``event: alert``) relayed from Redis pub/sub, with keep-alive comments.

One :class:`Hub` per process holds ONE Redis subscription (``bcx.store.channels``) and fans
each message out to its streams' bounded queues: the frame is built once per distinct
``series=`` filter, and a stream whose queue overflows (a client that does not read) is dropped
rather than blocking the others. Under gunicorn's gevent worker the hub and every stream are
greenlets, so an open stream costs no thread; under ``bcx web`` they are threads.

The hub subscribes when its first stream opens and lets go of Redis once the last one has
gone. Every ``SWEEP_EVERY`` seconds it polls its streams' sockets, so a client that hung up is
released at once, not at the next write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import select
import socket
import threading
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
RETRY_AFTER_S = 5  # a refused stream is told to come back after this long
QUEUE_SIZE = 256  # frames a stream may lag behind before it is dropped
SWEEP_EVERY = 1.0  # seconds between two looks for clients that hung up
KEEP_ALIVE = ": keep-alive\n\n"


def frame(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _items(message: str, wanted: frozenset[str] | None) -> list[dict[str, Any]]:
    """The objects of a published batch (a JSON array), keeping only the wanted series."""
    try:
        batch = json.loads(message)
    except ValueError:
        return []
    return [item for item in (batch if isinstance(batch, list) else ())
            if isinstance(item, dict) and (wanted is None or item.get("series") in wanted)]


def tick_payload(message: str, wanted: frozenset[str] | None) -> list[dict[str, Any]]:
    """A published batch with its values as numbers, keeping only the wanted series."""
    out = []
    for item in _items(message, wanted):
        tick = {"series": item.get("series"), "time": item.get("time")}
        for field in ("price", "bid", "ask"):
            if field in item:
                tick[field] = num(item[field])
        out.append(tick)
    return out


def trade_payload(message: str, wanted: frozenset[str] | None) -> list[dict[str, Any]]:
    """A published trade batch with price and size as numbers, keeping only the wanted
    series."""
    return [{"series": item.get("series"), "time": item.get("time"),
             "price": num(item.get("price")), "size": num(item.get("size")),
             "side": item.get("side"), "id": item.get("id")}
            for item in _items(message, wanted)]


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


class StreamsFull(Exception):
    """The process already serves its ``[web] max_streams`` streams."""


class Stream:
    """One open stream: its filter, its socket (to notice a hang-up) and its queue of frames;
    ``None`` in the queue ends it."""

    def __init__(self, wanted: frozenset[str] | None, sock: socket.socket | None):
        self.wanted = wanted
        self.sock = sock
        self.queue: queue.Queue[str | None] = queue.Queue(QUEUE_SIZE)
        self.closed = False

    def end(self, shutdown: bool = False) -> None:
        """Wake the stream so it ends; ``shutdown`` also fails a write it is stuck in."""
        self.closed = True
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)
        if shutdown and self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


class Hub:
    """The process's streams and its one Redis subscription, read by one reader (a greenlet
    under gevent, a thread otherwise) that exists only while streams are open."""

    def __init__(self, channels: Channels, keys: Keys, max_streams: int, timeout: float):
        self.channels = channels
        self.keys = keys
        self.max_streams = max_streams
        self.timeout = timeout
        self._lock = threading.Lock()
        self._streams: set[Stream] = set()
        self._subscribed = False

    def __len__(self) -> int:
        return len(self._streams)

    def join(self, wanted: frozenset[str] | None, sock: socket.socket | None = None) -> Stream:
        """A new stream, receiving everything published from now on. Raises
        :class:`StreamsFull` past ``max_streams`` and ``redis.RedisError`` when Redis does not
        confirm the subscription."""
        with self._lock:
            if len(self._streams) >= self.max_streams:
                raise StreamsFull(f"this server already serves {self.max_streams} streams")
            if not self._subscribed:
                subscription = subscribe(self.channels, self.keys, self.timeout)
                self._subscribed = True
                threading.Thread(target=self._read, args=(subscription,),
                                 name="bcx-sse-hub", daemon=True).start()
            stream = Stream(wanted, sock)
            self._streams.add(stream)
            return stream

    def leave(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)
        stream.closed = True

    def _read(self, subscription: Subscription) -> None:
        last_sweep = time.monotonic()
        try:
            while True:
                message = subscription.get(timeout=SWEEP_EVERY)
                with self._lock:
                    if not self._streams:  # the last stream has gone: let go of Redis
                        self._subscribed = False
                        return
                    streams = list(self._streams)
                if message is not None:
                    self._fan_out(message, streams)
                if time.monotonic() - last_sweep >= SWEEP_EVERY:
                    last_sweep = time.monotonic()
                    for stream in hung_up(streams):
                        self.leave(stream)
                        stream.end()
        except Exception as exc:
            # The clients' EventSource reconnects after RETRY_MS and subscribes anew.
            if isinstance(exc, (redis.RedisError, OSError)):
                log.warning("SSE streams end: Redis failed: %s", exc)
            else:
                log.exception("SSE streams end: the hub failed")
            with self._lock:
                streams = list(self._streams)
                self._streams.clear()
                self._subscribed = False
            for stream in streams:
                stream.end()
        finally:
            subscription.close()

    def _fan_out(self, message: Message, streams: list[Stream]) -> None:
        chunks: dict[frozenset[str] | None, str | None] = {}
        for stream in streams:
            if stream.wanted not in chunks:
                chunks[stream.wanted] = _chunk(message, self.keys, stream.wanted)
            chunk = chunks[stream.wanted]
            if chunk is None or stream.closed:
                continue
            try:
                stream.queue.put_nowait(chunk)
            except queue.Full:
                log.warning("SSE client dropped: %d frames behind", QUEUE_SIZE)
                self.leave(stream)
                stream.end(shutdown=True)


def _poll() -> Any:
    """select.poll, the real one under gevent (polling with timeout 0 never blocks, and
    gevent's own poll knows no POLLRDHUP)."""
    try:
        from gevent import monkey
    except ImportError:
        return select.poll()
    return monkey.get_original("select", "poll")()


def hung_up(streams: list[Stream]) -> list[Stream]:
    """The streams whose client has closed its connection (or reset it)."""
    poller = _poll()
    by_fd: dict[int, Stream] = {}
    for stream in streams:
        fd = stream.sock.fileno() if stream.sock is not None else -1
        if fd >= 0:
            by_fd[fd] = stream
            poller.register(fd, select.POLLRDHUP)
    return [by_fd[fd] for fd, _ in poller.poll(0) if fd in by_fd] if by_fd else []


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client's connection as gunicorn or the development server hands it over."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    return sock if hasattr(sock, "fileno") else None


def events(hub: Hub, stream: Stream, keepalive: float) -> Iterator[str]:
    """The SSE body: what the hub queues for the stream, a keep-alive comment after
    ``keepalive`` seconds without one. Closing the generator (the client went away) or the
    hub ending the stream takes it out of the hub."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while not stream.closed:
            try:
                chunk = stream.queue.get(timeout=keepalive)
            except queue.Empty:
                chunk = KEEP_ALIVE
            if chunk is None or stream.closed:
                return
            yield chunk
    finally:
        hub.leave(stream)
