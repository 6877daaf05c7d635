"""The tracker's one Redis thread: batches ticks and trades into the store, holds them in a bounded
buffer while Redis is unreachable, and writes stats, gap counts, the heartbeat and feed
events. A Redis error that waiting will not cure (a wrong password, a key of another type)
stops it with :attr:`Writer.fatal` saying which setting to fix.

Feed threads only ever call :meth:`Writer.submit` and :meth:`Writer.publish_event`, which
never block on Redis, so a Redis outage never stalls a websocket.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence

import redis

from bcx.config import TrackerConfig
from bcx.events import TriggerEvent, publish
from bcx.heartbeat import Heartbeat, tracker_component
from bcx.keys import Keys
from bcx.lifecycle import Backoff
from bcx.store import Stores
from bcx.store.errors import advice
from bcx.ticks import Tick, Trade
from bcx.timeutil import now_ms
from bcx.tracker.stats import COUNTER_MAX, DropLog, FeedStats, Latency

log = logging.getLogger(__name__)

# Redis retry delays: short, because the buffer, not the delay, bounds what an outage costs.
RETRY_INITIAL = 0.05
RETRY_MAX = 1.0
# Frames a feed may queue ahead of the writer before it waits (at least two batches).
INBOX_MIN = 1000
# A stats or heartbeat write that keeps failing is logged at most this often (seconds).
STATS_WARN_EVERY = 60.0


def open_stores(connection: redis.Redis, keys: Keys, config: TrackerConfig) -> Stores:
    """The tracker's stores: live tick notices as configured, stats of its instance."""
    return Stores.open(connection, keys, publish_ticks=config.publish_ticks,
                       tracker_instance=config.instance)


class ThrottledWarning:
    """Logs a WARNING at most once per ``every`` seconds; the messages held back in between
    are counted in the next one, so a failure repeated each second is one line a minute."""

    def __init__(self, logger: logging.Logger, every: float):
        self.logger = logger
        self.every = every
        self.next_at = 0.0
        self.held = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self.next_at:
            self.held += 1
            return
        if self.held:
            message, args = f"{message} (and %d more since the last report)", (*args, self.held)
        self.logger.warning(message, *args)
        self.held = 0
        self.next_at = now + self.every


class Writer:
    """Drains submitted ticks and trades into ``stores.ticks.write`` (one round trip for
    both) in batches of at most ``batch_size`` values that flush when full or
    ``flush_interval`` after their first value arrived. A trade counts as one value in the
    batch, the buffer bound and the drop count. ``stores`` is
    opened with the tracker's ``publish_ticks`` and ``instance`` (see :func:`open_stores`)."""

    def __init__(self, stores: Stores, config: TrackerConfig,
                 feeds: Sequence[FeedStats] = (), stream_maxlen: int = 100000):
        self.stores = stores
        self.config = config
        self.feeds = list(feeds)
        self.stream_maxlen = stream_maxlen
        self.heartbeat = Heartbeat.on(stores.heartbeats, tracker_component(config.instance),
                                      config.heartbeat_ttl, interval=config.stats_interval)
        self.inbox: queue.SimpleQueue[Sequence[Tick | Trade] | None] = queue.SimpleQueue()
        self.inbox_limit = max(2 * config.batch_size, INBOX_MIN)
        self.room = threading.Event()
        self.pending: deque[Tick | Trade] = deque()
        self.pending_since = 0.0
        self.events: deque[TriggerEvent] = deque()
        self.written = 0  # ticks
        self.written_trades = 0
        self.written_values = 0  # series values, sizes and trades sent to Redis
        self.dropped = DropLog()
        self.unlogged_drops = 0
        self.latency = Latency()
        self.window = Latency()
        self.redis_up = True
        self.retry = Backoff(RETRY_INITIAL, RETRY_MAX)
        self.retry_at = 0.0
        self.warn = ThrottledWarning(log, STATS_WARN_EVERY)
        self.warn_saturated = ThrottledWarning(log, STATS_WARN_EVERY)
        self.degraded = ""
        self.degraded_since_ms = 0
        # What to fix when Redis refused us for good (see bcx.store.errors.advice); the
        # thread has stopped then and run() exits with it.
        self.fatal: str | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tracker-writer", daemon=True)

    # ------------------------------------------------------------------ feed side
    def submit(self, ticks: Sequence[Tick | Trade]) -> None:
        """Hand over one frame's ticks and trades. When the writer falls behind a feed faster than
        Redis (a replay at full speed), the feed waits here, so the backlog and with it the
        latency stay bounded and TCP slows the sender."""
        self.inbox.put(ticks)
        if self.inbox.qsize() > self.inbox_limit:
            # Never while Redis is down: then the feeds must keep receiving into the buffer.
            while (self.inbox.qsize() > self.inbox_limit // 2 and self.redis_up
                   and not self.stopping.is_set()):
                self.room.clear()
                self.room.wait(0.05)

    def publish_event(self, event: TriggerEvent) -> None:
        self.events.append(event)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Flush everything submitted so far and stop; returns False if Redis stayed
        unreachable and ticks were left unwritten."""
        self.stopping.set()
        self.inbox.put(None)
        self.thread.join(timeout)
        return not self.thread.is_alive() and not self.pending

    @property
    def buffered(self) -> int:
        return len(self.pending)

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        next_stats = time.monotonic()
        stop_deadline: float | None = None
        while True:
            now = time.monotonic()
            if self.stopping.is_set() and stop_deadline is None:
                # Redis may be down at shutdown: keep retrying briefly, then give up loudly.
                stop_deadline = now + max(1.0, self.config.flush_interval * 4)
            self._collect(self._wait_time(now, next_stats))
            now = time.monotonic()
            if self.pending and now >= self.retry_at and (
                    stop_deadline is not None or len(self.pending) >= self.config.batch_size
                    or now - self.pending_since >= self.config.flush_interval):
                self._flush()
            now = time.monotonic()
            if now >= next_stats:
                self._write_stats()
                next_stats = now + self.config.stats_interval
            if self.fatal is not None or (stop_deadline is not None and self.inbox.empty() and (
                    not self.pending or now >= stop_deadline)):
                break
        self._finish()

    def _wait_time(self, now: float, next_stats: float) -> float:
        deadline = next_stats
        if self.pending:
            flush_at = max(self.pending_since + self.config.flush_interval, self.retry_at)
            deadline = min(deadline, flush_at)
        return min(max(0.0, deadline - now), 0.25)

    def _collect(self, timeout: float) -> None:
        """Move what the feeds submitted into ``pending``: wait up to ``timeout`` for the first
        item, then take whatever else is already there, up to a batch while Redis is up."""
        try:
            item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        limit = self.config.batch_size if self.redis_up else self.config.buffer_max
        while True:
            if item:
                if not self.pending:
                    self.pending_since = time.monotonic()
                self.pending.extend(item)
            if len(self.pending) >= limit:
                break
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
        self.room.set()
        self._enforce_bound()

    def _enforce_bound(self) -> None:
        excess = len(self.pending) - self.config.buffer_max
        if excess <= 0:
            return
        for _ in range(excess):
            self.dropped.add(self.pending.popleft())
        self.unlogged_drops += excess

    def _flush(self) -> None:
        size = self.config.batch_size
        while self.pending:
            batch = [self.pending.popleft() for _ in range(min(size, len(self.pending)))]
            ticks: list[Tick] = []
            trades: list[Trade] = []
            for item in batch:
                if isinstance(item, Trade):
                    trades.append(item)
                else:
                    ticks.append(item)
            try:
                values = self.stores.ticks.write(ticks, trades)
            except (redis.RedisError, OSError) as exc:
                self.pending.extendleft(reversed(batch))
                if not self._misconfigured(exc):
                    self._redis_failed(exc)
                return
            except Exception:  # noqa: BLE001 - a batch that can never be written is dropped
                log.exception("a batch of %d ticks cannot be written; dropped", len(batch))
                for tick in batch:
                    self.dropped.add(tick)
                continue
            self.latency.add_batch(batch, time.time_ns(), also=self.window)
            self.written += len(ticks)
            self.written_trades += len(trades)
            self.written_values += values
            self._redis_back()

    def _misconfigured(self, exc: BaseException) -> bool:
        """Whether ``exc`` is fatal; then the loop ends with :attr:`fatal` set."""
        message = advice(exc)
        if message is not None and self.fatal is None:
            self.fatal = message
        return message is not None

    def _redis_failed(self, exc: BaseException) -> None:
        delay = self.retry.next()
        self.retry_at = time.monotonic() + delay
        if self.redis_up:
            log.error("Redis unreachable (%s): buffering up to %d ticks and retrying",
                      exc, self.config.buffer_max)
        self.redis_up = False
        self._log_drops()

    def _redis_back(self) -> None:
        if self.redis_up:
            return
        self.redis_up = True
        self.retry.reset()
        self.retry_at = 0.0
        self._log_drops()
        log.info("Redis reachable again: writing %d buffered ticks", len(self.pending))

    def _log_drops(self) -> None:
        if not self.unlogged_drops:
            return
        log.error("buffer full (%d ticks): dropped %d more ticks, %d in all: %s",
                  self.config.buffer_max, self.unlogged_drops, self.dropped.total,
                  self.dropped.describe())
        self.unlogged_drops = 0

    # ------------------------------------------------------------------ stats and events
    def _write_stats(self) -> None:
        """Feed stats and gap deltas, pending feed events, then the heartbeat: each step on
        its own, so one that fails (Redis down, a key of the wrong type) is retried at the
        next interval and never stops the others; above all never the heartbeat."""
        stats_problem = self._write_feed_stats()
        problem = self._publish_events() or stats_problem
        if problem is None:
            self.degraded, self.degraded_since_ms = "", 0
        else:
            self.degraded = problem
            self.degraded_since_ms = self.degraded_since_ms or now_ms()
        if not self.stopping.is_set() and self.fatal is None:
            try:
                self.heartbeat.beat(**self._heartbeat_info())
            except (redis.RedisError, OSError) as exc:
                if not self._misconfigured(exc):
                    self.warn("tracker heartbeat not written: %s", exc)
                return
        self.window.reset()

    def _write_feed_stats(self) -> str | None:
        """Each feed's stats hash and its gap deltas; the deltas that were not counted go
        back to be retried. Returns what failed."""
        gaps = {feed.exchange: feed.take_gaps() for feed in self.feeds}
        try:
            outcome = self.stores.tracker_stats.write(
                {feed.exchange: feed.as_hash() for feed in self.feeds}, gaps)
        except (redis.RedisError, OSError) as exc:
            for feed in self.feeds:
                feed.return_gaps(gaps[feed.exchange])
            if not self._misconfigured(exc):
                self.warn("tracker stats not written: %s", exc)
            return f"stats not written: {exc}"
        for feed in self.feeds:
            feed.return_gaps(outcome.unwritten.get(feed.exchange, Counter()))
        for exchange, symbol in outcome.saturated:
            self.warn_saturated("gap count of %s:%s reached %d and stays there", exchange,
                                symbol, COUNTER_MAX)
        if outcome.failures:
            self.warn("tracker stats not written: %s", "; ".join(outcome.failures))
            return f"stats not written: {outcome.failures[0]}"
        return None

    def _publish_events(self) -> str | None:
        """Relay pending feed events in order; what fails stays for the next interval."""
        try:
            while self.events:
                publish(self.stores.connection, self.stores.keys, self.events[0],
                        self.stream_maxlen)
                self.events.popleft()
        except (redis.RedisError, OSError) as exc:
            if self._misconfigured(exc):
                return f"feed events not published: {exc}"
            self.warn("%d feed events not published yet: %s", len(self.events), exc)
            return f"feed events not published: {exc}"
        return None

    def _heartbeat_info(self) -> dict[str, object]:
        p50 = self.window.percentile(50)
        p99 = self.window.percentile(99)
        return {
            "exchanges": " ".join(feed.exchange for feed in self.feeds),
            "connected": " ".join(feed.exchange for feed in self.feeds if feed.connected),
            "written": self.written, "written_trades": self.written_trades,
            "buffered": len(self.pending),
            "dropped": self.dropped.total,
            "latency_p50_ms": "" if p50 is None else round(p50, 1),
            "latency_p99_ms": "" if p99 is None else round(p99, 1),
            # The shared "degraded" contract: empty while everything is written.
            "degraded": self.degraded,
            "degraded_since_ms": self.degraded_since_ms or "",
        }

    def _finish(self) -> None:
        for feed in self.feeds:
            feed.connected = False
        if self.fatal is not None:
            # run() reports the one message; the heartbeat goes if Redis lets us.
            with contextlib.suppress(redis.RedisError, OSError):
                self.heartbeat.clear()
            return
        if self.pending:
            log.error("stopping with Redis unreachable: %d ticks not written", len(self.pending))
        self._log_drops()
        self._write_stats()
        try:
            self.heartbeat.clear()
        except (redis.RedisError, OSError) as exc:
            log.warning("heartbeat not cleared: %s", exc)
        log.info("writer stopped: %d ticks and %d trades written, %d dropped", self.written,
                 self.written_trades, self.dropped.total)
