"""The ``bcx watcher`` process: the history and rules threads, each supervised on its own.

A thread whose loop raises is logged and restarted after an exponential back-off (capped by
``restart_backoff_max``) while the other carries on; each writes its own heartbeat
(``watcher.history``, ``watcher.rules``). A thread whose passes fail (a crash and restart, a
history pass in which a series failed) reads as degraded in its heartbeat, which keeps beating
through the back-off, until a pass succeeds. SIGTERM or SIGINT stops both after their current
step, clears the heartbeats and exits 0.

Redis errors are sorted (``bcx.store.errors``): a transient one (connection lost, LOADING,
READONLY after a failover, ...) is waited out by that restart back-off; a misconfiguration
(WRONGTYPE, NOAUTH, MOVED, CROSSSLOT) is logged once with the setting to fix and stops the
whole watcher with exit status 1, since no restart can cure it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bcx.config import Config
from bcx.heartbeat import RESTARTING, Heartbeat, reason
from bcx.keys import Keys
from bcx.lifecycle import Backoff, install_stop_handlers
from bcx.redisconn import from_config
from bcx.store import RollupStore, Store
from bcx.store.errors import advice, is_transient
from bcx.timeutil import now_ms
from bcx.watcher.archive import Archive
from bcx.watcher.history import HistoryManager, PassReport
from bcx.watcher.rules import RuleEngine, watch

log = logging.getLogger(__name__)

HISTORY, RULES = "watcher.history", "watcher.rules"
Clock = Callable[[], int]


class Supervised(threading.Thread):
    """Runs ``loop(stop)`` until ``stop`` is set, restarting it with back-off when it raises.
    While it waits to restart, ``heartbeat`` reads as degraded (the loop recovers it from
    ``RESTARTING`` after its next good pass) and keeps beating: the thread is alive, failing.
    A Redis misconfiguration is not restarted: it is logged once with its advice, kept in
    ``fatal`` and sets ``stop``, ending the process."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None],
                 stop: threading.Event, backoff_max: float, heartbeat: Heartbeat):
        super().__init__(name=name, daemon=True)
        self.loop = loop
        self.stop = stop
        self.heartbeat = heartbeat
        self.backoff = Backoff(min(1.0, backoff_max), backoff_max)
        self.restarts = 0
        self.fatal: str | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.loop(self.stop)
            except Exception as exc:  # noqa: BLE001 - any failure restarts the loop
                cause = exc.__cause__ or exc
                fatal = advice(cause)
                if fatal is not None:
                    # Once per process: the other thread may meet the same error meanwhile.
                    log.log(logging.DEBUG if self.stop.is_set() else logging.ERROR,
                            "%s stopped: %s", self.name, fatal)
                    self.fatal = fatal
                    self.stop.set()
                    return
                if time.monotonic() - started > self.backoff.cap:
                    self.backoff.reset()  # it had been healthy for a while
                delay = self.backoff.next()
                self.restarts += 1
                if is_transient(cause):
                    # An outage or failover is not a bug: one line, not a traceback per retry.
                    log.warning("%s: Redis unavailable (%s); retrying in %.1f s", self.name,
                                cause, delay)
                else:
                    log.exception("%s crashed; restarting in %.1f s", self.name, delay)
                self.heartbeat.degrade(RESTARTING, f"restarting after a crash: {reason(cause)}")
                self.back_off(delay)

    def back_off(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while not self.stop.is_set():
            try:
                self.heartbeat.beat()
            except redis.RedisError as exc:
                log.debug("%s: no heartbeat while backing off: %s", self.name, exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stop.wait(min(remaining, self.heartbeat.ttl_ms / 3000))


class Watcher:
    """Both threads over one Redis client (redis-py's pool is thread-safe; each thread makes
    its own pipelines and PubSub)."""

    def __init__(self, connection: redis.Redis, config: Config, clock: Clock = now_ms):
        self.connection = connection
        self.config = config
        self.keys = Keys(config.redis.prefix)
        self.clock = clock
        self.stop = threading.Event()
        settings = config.watcher
        archive = (Archive(settings.archive_dir, settings.archive_retention)
                   if settings.archive else None)
        self.archive = archive
        self.heartbeats = {name: Heartbeat(connection, self.keys, name, settings.heartbeat_ttl)
                           for name in (HISTORY, RULES)}
        self._next_history_beat = 0.0
        self.series_failures: dict[str, int] = {}  # history job -> series failed in its last pass
        self.pass_info: dict[str, float | str] = {}  # <job>_pass_s, <job>_at_ms of the last passes
        self.history = HistoryManager(Store(connection, self.keys),
                                      RollupStore(connection, self.keys), settings, archive,
                                      progress=self.history_progress)
        self.engine = RuleEngine(connection, self.keys, config, started_ms=clock())
        self.threads = [
            Supervised(name, loop, self.stop, settings.restart_backoff_max, self.heartbeats[name])
            for name, loop in ((HISTORY, self.history_loop), (RULES, self.rules_loop))]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    @property
    def fatal(self) -> str | None:
        """The advice of the misconfiguration that stopped a thread, or None."""
        return next((thread.fatal for thread in self.threads if thread.fatal), None)

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        for heartbeat in self.heartbeats.values():
            try:
                heartbeat.clear()
            except redis.RedisError as exc:
                # After a misconfiguration that already said what to fix, this is noise.
                log.log(logging.DEBUG if self.fatal else logging.WARNING,
                        "could not clear heartbeat %s: %s", heartbeat.component, exc)

    def history_loop(self, stop: threading.Event) -> None:
        """Roll-ups and trimming as apscheduler interval jobs on one worker, so passes never
        overlap. A job that raises ends this loop with that error, and ``Supervised``
        restarts it with back-off. The heartbeat starts with the first page a roll-up pass
        writes: it is beaten from inside the passes (``history_progress``), since a first pass
        over a large history can outlast the heartbeat's TTL, and by a job between passes (also
        before the first pass ends while degraded, so a failing thread reads as degraded, not
        down)."""
        settings = self.config.watcher
        failures: list[BaseException] = []
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC)

        heartbeat = self.heartbeats[HISTORY]

        def guarded(job_id: str, job: Callable[[], None]) -> Callable[[], None]:
            # The failure is this loop's to report (once, sorted by Supervised), not
            # apscheduler's: it would log a traceback for every lost connection.
            def run_job() -> None:
                try:
                    job()
                except Exception as exc:  # noqa: BLE001 - handed to Supervised
                    heartbeat.degrade(job_id, f"{job_id}: {reason(exc)}")
                    failures.append(exc)

            return run_job

        passed = threading.Event()  # a roll-up pass completed since this loop started

        def beat() -> None:
            if passed.is_set() or heartbeat.degraded()[0]:
                self.beat_history()

        def rollup() -> None:
            began, at = time.monotonic(), self.clock()
            report = self.history_passed("rollup", self.history.rollup_pass(at), began, at)
            log.debug("roll-up pass wrote %d candles", report.count)
            if not passed.is_set():
                # No scheduler call in here: shutdown() holds the job store lock while it
                # waits for the running job, so a job that takes that lock never finishes.
                passed.set()
                beat()

        def trim() -> None:
            began, at = time.monotonic(), self.clock()
            report = self.history_passed("trim", self.history.trim_pass(at), began, at)
            self.archive_passed(report)
            if report.count or report.invalid:
                log.info("trimmed %d items past retention (%d with no valid time), %d series "
                         "failed", report.count, report.invalid, len(report.failures))

        start = datetime.now(UTC)
        scheduler.add_job(guarded("rollup", rollup), "interval", id="rollup",
                          seconds=settings.rollup_every, next_run_time=start)
        scheduler.add_job(guarded("trim", trim), "interval", id="trim",
                          seconds=settings.trim_every, next_run_time=start)
        scheduler.add_job(guarded("heartbeat", beat), "interval", id="heartbeat",
                          seconds=settings.heartbeat_ttl / 3)
        scheduler.start()
        try:
            while not failures and not stop.wait(0.1):
                pass
        finally:
            scheduler.shutdown(wait=True)
        if failures:
            raise RuntimeError("a history job failed") from failures[0]

    def history_passed(self, job: str, report: PassReport, began: float | None = None,
                       at_ms: int | None = None) -> PassReport:
        """Record a finished pass: a series that failed makes the thread degraded until a pass
        of the same job in which none fails. The heartbeat carries the pass's duration
        (``<job>_pass_s``) and the instant it covered (``<job>_at_ms``: the roll-up lag is
        now minus that)."""
        heartbeat = self.heartbeats[HISTORY]
        if began is not None and at_ms is not None:
            self.pass_info[f"{job}_pass_s"] = round(time.monotonic() - began, 3)
            self.pass_info[f"{job}_at_ms"] = at_ms
        self.series_failures[job] = len(report.failures)
        heartbeat.recover(RESTARTING)
        if report.failures:
            log.warning("%s pass: %s", job, report.summary())
            heartbeat.degrade(job, f"{job}: {report.summary()}")
        else:
            heartbeat.recover(job)
        return report

    def archive_passed(self, report: PassReport) -> None:
        """The archive's size on disk, oldest date and the last trim pass's result go into
        the history heartbeat (``archive_bytes``, ``archive_oldest``, ``archive_last``): the
        health report, ``bcx status`` and the status page show them."""
        if self.archive is None:
            return
        try:
            size, oldest = self.archive.usage()
        except OSError as exc:
            log.warning("archive usage unknown: %s", exc)
            return
        self.pass_info.update(archive_bytes=size, archive_oldest=oldest or "",
                              archive_last=("ok: " if not report.failures else "")
                              + report.summary())

    def beat_history(self) -> None:
        self.heartbeats[HISTORY].beat(series_failures=sum(self.series_failures.values()),
                                      **self.pass_info)

    def history_progress(self) -> None:
        """Called by the history passes after each page (on the scheduler's one worker)."""
        now = time.monotonic()
        if now >= self._next_history_beat:
            self.beat_history()
            self._next_history_beat = now + self.config.watcher.heartbeat_ttl / 3

    def rules_loop(self, stop: threading.Event) -> None:
        watch(self.engine, stop, self.heartbeats[RULES], self.config.watcher.rule_interval,
              self.clock)


def run(config: Config) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status (0 on a clean stop)."""
    connection = from_config(config.redis, client_name="bcx-watcher")
    watcher = Watcher(connection, config)
    install_stop_handlers(watcher.stop)
    log.info("watcher started: roll-ups %s, %d rules", [int(i) for i, _ in
                                                         config.watcher.rollups],
             len(config.rules))
    watcher.start()
    try:
        while not watcher.stop.wait(1.0):
            pass
    finally:
        watcher.shutdown()
        connection.close()
    if watcher.fatal is not None:
        return 1
    log.info("watcher stopped")
    return 0
