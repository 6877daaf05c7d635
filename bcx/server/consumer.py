"""The delivery loop: reads the trigger-event stream through a consumer group and hands each
event to every notifier, at least once.

An entry is acknowledged (XACK, in the same transaction that records it in the alert history
and dead-letter list) only after every notifier has delivered it or given up on it. On start
the consumer first re-delivers its own pending entries (a crash between delivery and XACK),
then claims entries another consumer left pending for longer than ``claim_idle`` (a consumer
that died), then reads new entries one at a time, so a warm shutdown never strands an entry
in its pending list.

The tracker's feed reports (``bcx.events.is_feed_report``) are acknowledged without being
delivered or recorded: they are the input of ``feed_down`` rules, whose own events are the
alerts, so a feed that goes down reaches the user once, not twice. An event of a silenced rule
(``silenced``) is recorded, with ``"silenced": true`` in its delivery record, and not delivered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from bcx.config import ServerConfig
from bcx.events import TriggerEvent, is_feed_report
from bcx.heartbeat import Heartbeat
from bcx.lifecycle import Backoff
from bcx.secrets import Redactor
from bcx.server import history
from bcx.server.notifiers import DeliveryError, Notifier
from bcx.store import errors
from bcx.store.alerts import AlertLog
from bcx.store.events import EventStream
from bcx.timeutil import now_ms

log = logging.getLogger(__name__)

PENDING_BATCH = 50
CLAIM_BATCH = 10
# A consumer with nothing pending that has not read for this long is gone: remove it so the
# group's consumer list does not grow with every host (or consumer name) that ever served.
FORGET_IDLE_S = 3600.0


class Consumer:
    """One member of the server's consumer group. ``run()`` delivers until ``stop`` is set and
    returns after finishing the event in hand; it waits out transient Redis errors
    (``bcx.store.errors.is_transient``) and raises
    :class:`~bcx.store.errors.RedisMisconfigured` on a fatal one."""

    def __init__(self, events: EventStream, alerts: AlertLog, server: ServerConfig,
                 notifiers: Sequence[Notifier], stop: threading.Event, *, name: str,
                 block_ms: int = 1000, heartbeat: Heartbeat | None = None,
                 redact: Callable[[str], str] | None = None):
        self.events = events
        self.alerts = alerts
        self.server = server
        self.notifiers = list(notifiers)
        self.stop = stop
        self.name = name
        self.block_ms = block_ms
        self.heartbeat = heartbeat
        # Every failure text is scrubbed before it is logged or recorded: the alert history is
        # served without authentication by /api/v1.0/alerts.
        self.redact = redact or Redactor.for_section(server)
        self.group = server.group
        self.claim_every = max(1.0, server.claim_idle / 2)
        self.beat_every = max(0.5, (heartbeat.ttl_ms / 3000) if heartbeat else 10.0)
        self.backoff = Backoff(0.2, 30.0)
        self.stats = {"handled": 0, "failures": 0, "claimed": 0, "delivered": 0, "dead_lettered": 0}
        self.last_event_ms = 0
        self._next_claim = 0.0
        self._next_beat = 0.0

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        joined = False
        while not self.stop.is_set():
            try:
                self.beat_if_due()
                if not joined:
                    self.ensure_group()
                    self.deliver_own_pending()
                    joined = True
                if time.monotonic() >= self._next_claim:
                    self.claim_abandoned()
                    self._next_claim = time.monotonic() + self.claim_every
                self.read_new()
                self.backoff.reset()
            except (redis.RedisError, OSError) as exc:
                if errors.is_transient(exc):
                    delay = self.backoff.next()
                    log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                    self.stop.wait(delay)
                elif "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                    # The stream or group vanished (Redis restarted without persistence, or
                    # someone deleted the key): create it again and start over.
                    log.warning("consumer group %s is gone (%s); recreating it", self.group,
                                exc)
                else:
                    errors.check(exc)
                    raise
                # A read whose reply was lost left its entry pending on this consumer.
                joined = False

    def ensure_group(self) -> None:
        """Create the group at id 0 (so a first start delivers everything already in the
        stream) together with the stream; an existing group is kept as it is."""
        if self.events.ensure_group(self.group):
            log.info("created consumer group %s on %s", self.group, self.events.stream)

    def deliver_own_pending(self) -> None:
        """Entries this consumer name read but never acknowledged (it crashed mid-delivery)."""
        cursor = "0"
        while not self.stop.is_set():
            entries = self.events.read_pending(self.group, self.name, cursor, PENDING_BATCH)
            if not entries:
                return
            log.info("re-delivering %d pending event(s) of consumer %s", len(entries),
                     self.name)
            for entry_id, fields in entries:
                if self.stop.is_set():
                    return
                self.handle(entry_id, fields)
                cursor = entry_id

    def claim_abandoned(self) -> None:
        """Take over entries other consumers have left unacknowledged for ``claim_idle``."""
        idle_ms = int(self.server.claim_idle * 1000)
        cursor = "0-0"
        while not self.stop.is_set():
            cursor, claimed, deleted = self.events.autoclaim(self.group, self.name, idle_ms,
                                                             cursor, CLAIM_BATCH)
            if deleted:
                log.error("%d pending event(s) were trimmed from the stream before delivery: "
                          "%s", len(deleted), ", ".join(deleted[:10]))
            if claimed:
                log.info("claimed %d event(s) left pending by another consumer", len(claimed))
                self.stats["claimed"] += len(claimed)
            for entry_id, fields in claimed:
                if self.stop.is_set():
                    return
                self.handle(entry_id, fields)
            if cursor == "0-0":
                break
        self.forget_departed()

    def forget_departed(self) -> None:
        forget_ms = max(FORGET_IDLE_S, 2 * self.server.claim_idle) * 1000
        for info in self.events.consumers(self.group):
            if (info["name"] != self.name and int(info["pending"]) == 0
                    and int(info["idle"]) > forget_ms):
                self.events.delconsumer(self.group, info["name"])
                log.info("removed departed consumer %s from group %s", info["name"], self.group)

    def read_new(self) -> None:
        """Block (briefly, so a stop request is seen promptly) for one new entry. One at a
        time: an entry read is an entry handled before the next stop check."""
        for entry_id, fields in self.events.read_new(self.group, self.name, 1, self.block_ms):
            self.handle(entry_id, fields)

    # ------------------------------------------------------------------ one event
    def handle(self, entry_id: str, fields: dict[str, str] | None) -> None:
        """Deliver one entry through every notifier, then record and acknowledge it."""
        self.beat_if_due()  # a long backlog must not let the heartbeat expire
        if not fields:
            # Trimmed from the capped stream while pending: nothing left to deliver.
            log.error("event %s was trimmed from the stream before delivery", entry_id)
            self._commit(entry_id, lambda pipe: None)
            return
        try:
            event = TriggerEvent.from_json(fields.get("event") or "")
            payload = event.to_json()
        except (TypeError, ValueError, AttributeError) as exc:
            error = self.redact(f"not a trigger event: {type(exc).__name__}: {exc}")
            log.error("stream entry %s: %s", entry_id, error)
            self._commit(entry_id, lambda pipe: history.record_undecodable(
                self.alerts, pipe, fields=fields, entry=entry_id, consumer=self.name,
                error=error, dead_letter_max=self.server.dead_letter_max))
            self.stats["dead_lettered"] += 1
            return
        if is_feed_report(event):
            log.debug("event %s is the tracker's feed report, not an alert: acknowledged only",
                      event.id)
            self._commit(entry_id, lambda pipe: None)
            return
        if event.silenced:
            log.info("event %s of silenced rule %s: recorded, not delivered", event.id,
                     event.name)
            outcomes = []
        else:
            outcomes = [self._deliver(notifier, event, payload) for notifier in self.notifiers]
        document = json.loads(payload)
        self._commit(entry_id, lambda pipe: history.record(
            self.alerts, pipe, event=document, entry=entry_id, consumer=self.name,
            outcomes=outcomes, alerts_max=self.server.alerts_max,
            dead_letter_max=self.server.dead_letter_max, silenced=event.silenced))
        self.stats["handled"] += 1
        self.stats["failures"] += sum(not outcome.ok for outcome in outcomes)
        self.stats["delivered"] += sum(outcome.ok for outcome in outcomes)
        self.stats["dead_lettered"] += sum(not outcome.ok for outcome in outcomes)
        self.last_event_ms = now_ms()

    def _deliver(self, notifier: Notifier, event: TriggerEvent, payload: str
                 ) -> history.Outcome:
        try:
            notifier.deliver(event, payload)
        except DeliveryError as exc:
            error = self.redact(str(exc))
            log.error("%s gave up on event %s after %d attempt(s): %s", notifier.name, event.id,
                      exc.attempts, error)
            return history.Outcome(notifier.name, False, error, exc.attempts)
        except Exception as exc:  # noqa: BLE001 - one broken notifier must not stop the others
            log.exception("%s failed on event %s", notifier.name, event.id)
            error = self.redact(f"{type(exc).__name__}: {exc}")
            return history.Outcome(notifier.name, False, error)
        log.debug("%s delivered event %s", notifier.name, event.id)
        return history.Outcome(notifier.name, True)

    def _commit(self, entry_id: str, queue: Callable[[Any], None]) -> None:
        """Record and XACK in one transaction. The notifiers are done by now, so a transient
        Redis error here (lost connection, READONLY after a failover, LOADING, …) is waited
        out rather than re-delivering; only a stop request gives up, leaving the entry pending
        for the next start (a duplicate, never a loss). A fatal one raises
        :class:`~bcx.store.errors.RedisMisconfigured`; the entry stays pending too."""
        backoff = Backoff(0.2, 10.0)
        while True:
            try:
                self.events.ack_and_record(self.group, entry_id, queue)
                return
            except (redis.RedisError, OSError) as exc:
                if not errors.is_transient(exc):
                    errors.check(exc)
                    raise
                if self.stop.is_set():
                    log.error("could not acknowledge event %s (%s); it stays pending and is "
                              "delivered again after restart", entry_id, exc)
                    return
                delay = backoff.next()
                log.warning("acknowledging %s failed (%s: %s); retrying in %.1fs", entry_id,
                            type(exc).__name__, exc, delay)
                self.stop.wait(delay)

    # ------------------------------------------------------------------ heartbeat
    def beat_if_due(self) -> None:
        if self.heartbeat is None or time.monotonic() < self._next_beat:
            return
        self.heartbeat.beat(consumer=self.name, group=self.group,
                            notifiers=",".join(n.name for n in self.notifiers),
                            last_event_ms=self.last_event_ms, **self.stats)
        self._next_beat = time.monotonic() + self.beat_every
