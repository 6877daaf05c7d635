"""Wiring of the tracker process: one writer thread, one feed thread per configured exchange,
and ``run()``, the body of ``bcx tracker`` (signals, clean shutdown, exit status)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bcx.config import Config
from bcx.keys import Keys
from bcx.lifecycle import install_stop_handlers
from bcx.redisconn import from_config
from bcx.tracker.backfill import Backfiller
from bcx.tracker.feed import Feed, ProtocolFactory
from bcx.tracker.stats import FeedStats
from bcx.tracker.writer import Writer, open_stores

log = logging.getLogger(__name__)

# Seconds the feeds get to notice a stop; the writer then flushes what they handed over.
FEED_STOP_TIMEOUT = 2.0
# Exit status when Redis refuses the tracker for good (as for an invalid config: a setting
# to fix, not a crash to restart from).
EXIT_MISCONFIGURED = 2


def default_protocols(name: str) -> ProtocolFactory:
    from bcx import exchanges

    return exchanges.get(name)


def tracker_client(config: Config) -> redis.Redis:
    """The process's Redis client. The writer retries with its own back-off while holding
    ticks in its buffer, so the client itself must fail fast instead of retrying inside a
    call (which would stall the writer for seconds per command)."""
    connection: redis.Redis = from_config(config.redis, client_name="bcx-tracker")
    connection.set_retry(Retry(NoBackoff(), 0))
    return connection


class Tracker:
    """The running tracker: ``start()``, then ``stop()`` flushes and returns whether every
    received tick reached Redis."""

    def __init__(self, config: Config, connection: redis.Redis,
                 protocols: Callable[[str], ProtocolFactory] | Mapping[str, ProtocolFactory]
                 = default_protocols):
        self.config = config
        tracker = config.tracker
        self.stats = [FeedStats(name) for name in tracker.exchanges]
        stores = open_stores(connection, Keys(config.redis.prefix), tracker)
        self.writer = Writer(stores, tracker, self.stats,
                             stream_maxlen=config.redis.stream_maxlen)
        lookup = protocols.__getitem__ if isinstance(protocols, Mapping) else protocols
        self.backfillers = {stats.exchange: backfiller for stats in self.stats
                            if (backfiller := self._backfiller(stats)) is not None}
        self.feeds = [
            Feed(stats.exchange, lookup(stats.exchange), config.exchanges[stats.exchange].url,
                 config.exchanges[stats.exchange].symbols, tracker, self.writer, stats,
                 self.backfillers.get(stats.exchange))
            for stats in self.stats
        ]

    def _backfiller(self, stats: FeedStats) -> Backfiller | None:
        """The exchange's gap-fill thread, when ``backfill`` is on and it has a rest_url."""
        from bcx import rest
        from bcx.rest.client import RestClient

        rest_url = self.config.exchanges[stats.exchange].rest_url
        if not self.config.tracker.backfill or not rest_url or stats.exchange not in rest.NAMES:
            return None
        venue = rest.venue(stats.exchange)
        return Backfiller(venue, RestClient(rest_url, venue.RATE), self.writer, stats,
                          self.config.tracker.backfill_max_age)

    def start(self) -> None:
        self.writer.start()
        for backfiller in self.backfillers.values():
            backfiller.start()
        for feed in self.feeds:
            feed.start()
        log.info("tracker started: %s", ", ".join(
            f"{feed.exchange} {' '.join(feed.symbols)}" for feed in self.feeds))

    def stop(self) -> bool:
        for feed in self.feeds:
            feed.stop()
        for backfiller in self.backfillers.values():
            backfiller.stop()
        for feed in self.feeds:
            feed.join(FEED_STOP_TIMEOUT)
        for backfiller in self.backfillers.values():
            backfiller.join(FEED_STOP_TIMEOUT)
        return self.writer.stop()

    def feed(self, exchange: str) -> Feed:
        return next(feed for feed in self.feeds if feed.exchange == exchange)


def run(config: Config) -> int:
    """``bcx tracker``: stream until SIGTERM/SIGINT, flush, exit 0 (1 if ticks were lost, 2
    if Redis refused the tracker for a reason a setting must fix)."""
    stop = threading.Event()
    install_stop_handlers(stop)
    tracker = Tracker(config, tracker_client(config))
    tracker.start()
    while not stop.wait(0.5):
        if tracker.writer.fatal is not None:
            log.error("tracker stopped: %s", tracker.writer.fatal)
            tracker.stop()
            return EXIT_MISCONFIGURED
        if not tracker.writer.thread.is_alive():
            log.error("the writer thread died: exiting so the service manager restarts us")
            tracker.stop()
            return 1
    flushed = tracker.stop()
    log.info("tracker stopped%s", "" if flushed else " with unwritten ticks")
    return 0 if flushed else 1
