"""The rule engine: evaluates alert rules on ticks and on a timer, and publishes trigger events.

Rules come from ``[rule:NAME]`` sections and the ``rules`` hash (``bcx.rulebook``). What each
kind's condition is (a rule whose data is missing is not evaluated):

* ``above`` / ``below``: the field's value is strictly above / below ``threshold``.
* ``cross_up`` / ``cross_down``: the value moved from at-or-below (at-or-above) the threshold to
  above (below) it. A rule only arms once it has seen a value on the near side, so a series
  that starts above the level does not count as crossing up; it resolves on the way back.
* ``change_pct``: the % change of the field over the ``window`` that ends now: its latest
  value against its value ``window`` ago (the last point at or before then). A series that
  has not moved for a window has not changed, so a rule does not stay firing on an old move
  because the series went quiet. A positive threshold fires on rises of at least that much, a
  negative one on falls of at least that much.
* ``spread``: ``ask - bid`` above ``threshold``, absolute or (``spread_mode = pct``) as % of
  the mid price.
* ``stale``: no tick of the series for more than ``threshold`` seconds, counting from the
  latest tick's time, the moment this watcher last saw one, or its start, whichever is newest
  (the start only delays a new firing, so a restart does not resolve a series still stale).
* ``volume``: the base volume traded over the ``window`` that ends now (exact, from the trades
  and their roll-ups, ``bcx.aggregate.range_volume``) is at or above ``threshold``; evaluated
  on the periodic pass.
* ``trade_size``: one trade's size is at or above ``threshold`` (a large-trade alert): each
  trade of the tracker's batches on ``keys.trades_channel`` is an observation, so a smaller
  trade after it resolves the rule.
* ``feed_down``: the tracker publishes ``TriggerEvent(kind="feed_down",
  rule="feed_down:<exchange>")`` firing when a feed is down and resolved when it is back. A
  ``feed_down`` rule watches the exchange of its ``series`` or, with no series, every exchange
  (one instance per exchange); it holds while the tracker says the feed is down. The tracker's
  own events are read live from ``keys.events_channel`` and, at start, from the event stream.
  Those reports are not delivered as alerts (``bcx.events``): the rule's events are.

Ticks arrive as the tracker's batches on ``keys.ticks_channel``; only the rules of the series in
a batch are evaluated, above/below/cross on every value in order so a crossing inside one batch
counts. ``periodic()`` evaluates every rule from Redis, for time-based conditions (``stale``,
``for``, cooldowns). Events (``rule`` = the rule id) go out through the event stream
before the state that records them is saved: a crash in between may repeat an event, never
lose one. The states of rules that no longer exist (deleted, removed from bcx.conf, disabled)
are dropped at each reload, so a rule added again later starts afresh.

A silenced rule (``bcx.rulebook.silence_rule``) still changes state and publishes its events,
marked ``silenced``: the server records them without delivering. An acknowledged firing
instance (``bcx.rulebook.acknowledge``) does not repeat; the acknowledgement is dropped when it
resolves. Silences and acknowledgements are re-read with the rules (a change notice names the
rule). Each event carries the rule's name and labels, its value as a number and, where the
value is an exact decimal, its text (``value_text``).

Cost, so that 1,000 rules stay cheap: an evaluation reads each series' latest values, and each
change_pct reference, once for all the rules that need it, and saves only the states that
changed, in one HSET. A change notice (``keys.rules_changed_channel``, payload the rule id)
re-reads just that rule; every rule is re-read only every ``RELOAD_EVERY`` passes.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from threading import Event
from typing import Any

import redis

from bcx import aggregate, events
from bcx.config import Config
from bcx.events import TriggerEvent
from bcx.heartbeat import RESTARTING, Heartbeat
from bcx.keys import Keys, split_series_id
from bcx.rulebook import (
    CONFIG_PREFIX,
    Rule,
    config_rules,
    silences,
    stored_rule,
    stored_rules,
)
from bcx.store import RollupStore, RuleStore, Store, TradeStore
from bcx.store.channels import Channels
from bcx.store.events import EventStream
from bcx.timeutil import now_ms
from bcx.watcher.state import FIRING_STATE, Instance, RuleState

log = logging.getLogger(__name__)

VALUE_KINDS = ("above", "below", "cross_up", "cross_down")
TRADE_KINDS = ("volume", "trade_size")  # evaluated from trades, not from tick batches
FEED_DOWN = events.FEED_DOWN
STREAM_LOOKBACK = 2000  # tracker events read back at start to learn which feeds are down
RELOAD_EVERY = 60  # periodic passes between rule reloads, in case a change notice was missed


class RuleEngine:
    """Rule states and evaluation. Not thread-safe: one thread (the rules loop) owns it."""

    def __init__(self, connection: redis.Redis, keys: Keys, config: Config, started_ms: int):
        self.connection = connection
        self.keys = keys
        self.config = config
        self.ticks = Store(connection, keys)
        self.trades = TradeStore(connection, keys)
        self.rollups = RollupStore(connection, keys)
        self.rule_store = RuleStore(connection, keys)
        self.event_stream = EventStream(connection, keys)
        self.started_ms = started_ms
        self.config_rules = config_rules(config)
        self.stored: dict[str, Rule] = {}  # rules of the rules hash by id
        self.rules: list[Rule] = []  # enabled rules: bcx.conf's, then the hash's by id
        self.by_series: dict[str, list[Rule]] = {}
        self.states: dict[str, RuleState] = {}
        self.last_seen: dict[str, int] = {}  # series -> ms this watcher last saw a tick
        self.feeds: dict[str, bool] = {}  # exchange -> down, as the tracker last said
        self.emitted = 0
        self.silenced_until: dict[str, int] = {}  # rule id -> ms its silence ends
        self.acked: set[tuple[str, str]] = set()  # (rule id, instance) acknowledged firings
        self._volumes: dict[tuple[str, int], Any] = {}  # (series, window ms) -> this pass's

    # ------------------------------------------------------------------ set-up
    def start(self) -> None:
        """Load rules, their saved states and the tracker's feed status."""
        saved = self.rule_store.states()
        self.states = {rule_id: RuleState.from_json(text) for rule_id, text in saved.items()}
        self.reload()
        for text in self.event_stream.recent_reports(STREAM_LOOKBACK):
            self._note_tracker_event(text)

    def reload(self) -> None:
        """Every rule afresh: at start, and every ``RELOAD_EVERY`` passes in case a change
        notice was missed."""
        self.stored = {rule.id: rule for rule in stored_rules(self.rule_store)}
        self._index()
        self._load_marks()

    def _load_marks(self) -> None:
        """Silences and acknowledgements, as the API last wrote them."""
        self.silenced_until = {rule_id: int(silence["until"])
                               for rule_id, silence in silences(self.rule_store).items()}
        pairs = (name.split(" ", 1) for name in self.rule_store.acks() if " " in name)
        self.acked = {(pair[0], pair[1]) for pair in pairs}

    def changed(self, rule_id: str) -> None:
        """A change notice names one stored rule (added or deleted): read only that one, so
        a script adding many rules does not cost a full reload each."""
        if not rule_id or rule_id.startswith(CONFIG_PREFIX):
            self.reload()
            return
        rule = stored_rule(self.rule_store, rule_id)
        if rule is None:
            self.stored.pop(rule_id, None)
        else:
            self.stored[rule_id] = rule
        self._index()
        self._load_marks()

    def _index(self) -> None:
        ordered = self.config_rules + [self.stored[rule_id] for rule_id in sorted(self.stored)]
        self.rules = [rule for rule in ordered if rule.spec.enabled]
        index: dict[str, list[Rule]] = defaultdict(list)
        for rule in self.rules:
            if rule.spec.kind != FEED_DOWN:
                index[rule.spec.series].append(rule)
        self.by_series = dict(index)
        live = {rule.id for rule in self.rules}
        gone = [rule_id for rule_id in self.states if rule_id not in live]
        for rule_id in gone:
            del self.states[rule_id]
        self.rule_store.drop_states(gone)
        log.info("watching %d enabled rules", len(self.rules))

    # ------------------------------------------------------------------ inputs
    def on_ticks(self, payload: str, now: int) -> int:
        """A batch from the ticks channel: evaluate the rules of its series. Returns events."""
        observed = _by_series(payload, "tick")
        for series in observed:
            self.last_seen[series] = now
        rules = [rule for series in observed for rule in self.by_series.get(series, ())
                 if rule.spec.kind not in TRADE_KINDS]
        return self._evaluate(rules, now, observed)

    def on_trades(self, payload: str, now: int) -> int:
        """A batch from the trades channel (``[{"series", "time", "price", "size", "side",
        "id"}]``): evaluate the ``trade_size`` rules of its series on each trade, in order."""
        observed = _by_series(payload, "trade")
        rules = [rule for series in observed for rule in self.by_series.get(series, ())
                 if rule.spec.kind == "trade_size"]
        return self._evaluate(rules, now, observed)

    def on_tracker_event(self, payload: str, now: int) -> int:
        """An event from the events channel: a tracker feed_down changes feed_down rules."""
        if not self._note_tracker_event(payload):
            return 0
        return self._evaluate([rule for rule in self.rules if rule.spec.kind == FEED_DOWN], now)

    def periodic(self, now: int) -> int:
        """Evaluate every rule from what Redis holds: time passing can change a state."""
        return self._evaluate(self.rules, now)

    def _note_tracker_event(self, payload: str) -> bool:
        try:
            event = TriggerEvent.from_json(payload)
        except (ValueError, TypeError):
            return False
        if not events.is_feed_report(event):
            return False  # not the tracker's (our own feed_down events carry a rule id)
        self.feeds[event.rule[len(events.FEED_REPORT_PREFIX):]] = event.state == events.FIRING
        return True

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, rules: list[Rule], now: int,
                  observed: dict[str, list[dict[str, Any]]] | None = None) -> int:
        if not rules:
            return 0
        self._volumes = {}  # one volume read per (series, window) and evaluation
        latest, references = self._snapshot(rules, observed, now)
        out: list[TriggerEvent] = []
        dirty: set[str] = set()
        resolved: list[tuple[str, str]] = []
        for rule in rules:
            state = self.states.setdefault(rule.id, RuleState())
            before = state.fingerprint()
            values = [instance.value for instance in state.instances.values()]
            try:
                observations = self._observations(rule, latest, references, observed, now)
            except (ArithmeticError, ValueError):
                # A value Redis holds that is no number must not stop every other rule.
                log.warning("rule %s: cannot read the values of %s", rule.id, rule.spec.series)
                continue
            for key, value in observations:
                instance = state.instance(key)
                try:
                    holds = _holds(rule, instance, value)
                except (InvalidOperation, ValueError):
                    log.warning("rule %s: cannot compare %r", rule.id, value)
                    continue
                acked = (rule.id, key) in self.acked
                change = instance.step(holds, now, int(rule.spec.for_ * 1000),
                                       int(rule.spec.cooldown * 1000), acked)
                instance.value = _number(rule, value)
                if change is not None:
                    out.append(_event(rule, key, change, value, now,
                                      self.silenced_until.get(rule.id, 0) > now))
                if change == events.RESOLVED and acked:
                    resolved.append((rule.id, key))
            # The last values ride along with state changes, and with every periodic pass.
            if state.fingerprint() != before or (
                    observed is None
                    and values != [instance.value for instance in state.instances.values()]):
                dirty.add(rule.id)
        for event in out:
            self.event_stream.publish(event.to_json(), self.config.redis.stream_maxlen)
            log.info("%s", event.message)
        self.emitted += len(out)
        self.rule_store.save_states({rule_id: self.states[rule_id].to_json()
                                     for rule_id in dirty})
        for rule_id, key in resolved:  # an acknowledgement lasts until its alert resolves
            self.acked.discard((rule_id, key))
            self.rule_store.drop_ack(rule_id, key)
        return len(out)

    def _snapshot(self, rules: list[Rule], observed: dict[str, list[dict[str, Any]]] | None,
                  now: int) -> tuple[dict[str, dict[str, Any]], dict[str, str | None]]:
        """Latest values of the series the rules need from Redis, and change_pct references."""
        needed = sorted({rule.spec.series for rule in rules
                         if rule.spec.kind not in (FEED_DOWN, *TRADE_KINDS)
                         and (observed is None or rule.spec.kind not in VALUE_KINDS)})
        found = self.ticks.latest_many(split_series_id(series) for series in needed)
        latest = {series: row or {} for series, row in zip(needed, found, strict=True)}
        # One read per (series, field, window), however many rules share it.
        wanted: dict[str, tuple[str, str, int]] = {}
        for rule in rules:
            row = latest.get(rule.spec.series, {})
            if rule.spec.kind == "change_pct" and f"{rule.spec.field}_ms" in row:
                wanted[rule.id] = (rule.spec.series, rule.spec.field,
                                   now - int(rule.spec.window * 1000))
        reads = sorted(set(wanted.values()))
        values = self.ticks.last_at_or_before([(*split_series_id(series), field, reference_ms)
                                               for series, field, reference_ms in reads])
        by_read = dict(zip(reads, values, strict=True))
        return latest, {rule_id: by_read[read] for rule_id, read in wanted.items()}

    def _observations(self, rule: Rule, latest: dict[str, dict[str, Any]],
                      references: dict[str, str | None],
                      observed: dict[str, list[dict[str, Any]]] | None, now: int
                      ) -> list[tuple[str, Any]]:
        """(instance key, observed quantity) pairs to feed the rule's instances, in order."""
        spec = rule.spec
        if spec.kind == FEED_DOWN:
            if spec.series:
                exchange = split_series_id(spec.series)[0]
                return [(exchange, self.feeds.get(exchange, False))]
            return sorted(self.feeds.items())
        row = latest.get(spec.series, {})
        if spec.kind in VALUE_KINDS:
            if observed is None:
                return [(spec.series, row[spec.field])] if spec.field in row else []
            return [(spec.series, item[spec.field]) for item in observed.get(spec.series, ())
                    if isinstance(item.get(spec.field), str)]
        if spec.kind == "change_pct":
            reference, current = references.get(rule.id), row.get(spec.field)
            if reference is None or current is None or Decimal(reference) == 0:
                return []
            return [(spec.series, (Decimal(current) - Decimal(reference))
                     / Decimal(reference) * 100)]
        if spec.kind == "trade_size":
            return [(spec.series, item["size"]) for item in (observed or {}).get(spec.series, ())
                    if isinstance(item.get("size"), str)]
        if spec.kind == "volume":
            exchange, symbol = split_series_id(spec.series)
            window = (spec.series, int(spec.window * 1000))
            if window not in self._volumes:
                self._volumes[window] = aggregate.range_volume(
                    self.rollups, self.trades, exchange, symbol, now - window[1] + 1, now,
                    [int(interval) for interval, _ in self.config.watcher.rollups]).volume
            return [(spec.series, self._volumes[window])]
        if spec.kind == "spread":
            if "bid" not in row or "ask" not in row:
                return []
            bid, ask = Decimal(row["bid"]), Decimal(row["ask"])
            if spec.spread_mode == "abs":
                return [(spec.series, ask - bid)]
            mid = (ask + bid) / 2
            return [(spec.series, (ask - bid) / mid * 100)] if mid > 0 else []
        last = max(int(row.get("time", 0)), self.last_seen.get(spec.series, 0))
        instance = self.states[rule.id].instances.get(spec.series)
        if instance is None or instance.state != FIRING_STATE:
            # The start is a grace (the tracker may still be connecting) for a new firing; it
            # must not resolve a series that was stale before a restart and still is.
            last = max(last, self.started_ms)
        return [(spec.series, (now - last) / 1000)]  # stale


def _holds(rule: Rule, instance: Instance, value: Any) -> bool:
    kind = rule.spec.kind
    if kind == FEED_DOWN:
        return bool(value)
    threshold = Decimal(str(rule.spec.threshold))
    number = Decimal(value) if isinstance(value, str) else Decimal(str(value))
    if kind == "above":
        return number > threshold
    if kind == "below":
        return number < threshold
    if kind in ("cross_up", "cross_down"):
        near_side = number <= threshold if kind == "cross_up" else number >= threshold
        if near_side:
            instance.armed = True
            return False
        return instance.armed
    if kind == "change_pct":
        return number >= threshold if threshold >= 0 else number <= threshold
    if kind in TRADE_KINDS:
        return number >= threshold  # a trade or a volume exactly at the threshold fires
    return number > threshold  # spread, stale


def _number(rule: Rule, value: Any) -> float | None:
    """The observed value as the JSON number events and states carry (None for feed_down)."""
    if rule.spec.kind == FEED_DOWN:
        return None
    number = float(value)
    return number if isinstance(value, str) or rule.spec.kind in ("volume", "spread") \
        else round(number, 4)


def _event(rule: Rule, key: str, change: str, value: Any, now: int,
           silenced: bool = False) -> TriggerEvent:
    spec = rule.spec
    text: str | None = None
    if spec.kind == FEED_DOWN:
        shown: float | str | None = None
    elif isinstance(value, str) or (spec.kind == "spread" and spec.spread_mode == "abs"):
        shown = text = str(value)
    elif spec.kind == "volume":
        shown = text = format(value, "f")
    else:
        shown = round(float(value), 4)
    what = {"stale": "seconds without a tick", "change_pct": f"% change over {spec.window:g}s",
            "spread": f"spread ({spec.spread_mode})", "volume": f"volume over {spec.window:g}s",
            "trade_size": "trade size"}.get(spec.kind, spec.field)
    detail = ("feed down" if spec.kind == FEED_DOWN
              else f"{what} {shown} ({spec.kind} {spec.threshold:g})")
    return TriggerEvent(rule=rule.id, series=key, state=change, kind=spec.kind,
                        value=_number(rule, value), threshold=spec.threshold, time=now,
                        message=f"{rule.name} {change}: {key} {detail}", name=rule.name,
                        labels=dict(rule.labels), value_text=text, silenced=silenced)


def watch(engine: RuleEngine, stop: Event, heartbeat: Heartbeat, interval: float,
          clock: Any = now_ms) -> None:
    """The rules thread's loop: react to ticks, tracker events and rule changes as they are
    published, and run ``periodic()`` every ``interval`` seconds, until ``stop`` is set."""
    keys = engine.keys
    # Subscribe (confirmed) before reading state so nothing published meanwhile is missed.
    subscription = Channels(engine.connection, keys).subscribe(
        keys.ticks_channel, keys.trades_channel, keys.events_channel,
        keys.rules_changed_channel, timeout=engine.config.redis.socket_timeout)
    try:
        engine.start()
        passes = 0
        next_pass = next_beat = clock()
        while not stop.is_set():
            now = clock()
            if now >= next_pass:
                engine.periodic(now)
                heartbeat.recover(RESTARTING)  # a pass went through: no longer crash-looping
                passes += 1
                if passes % RELOAD_EVERY == 0:
                    engine.reload()
                next_pass = now + int(interval * 1000)
            if now >= next_beat:
                heartbeat.beat(rules=len(engine.rules), events=engine.emitted)
                next_beat = now + heartbeat.ttl_ms // 3
            wait = max(0.0, min(0.5, (min(next_pass, next_beat) - clock()) / 1000))
            message = subscription.get(timeout=wait)
            if message is None:
                continue
            channel, data = message.channel, message.data
            if channel == keys.ticks_channel:
                engine.on_ticks(data, clock())
            elif channel == keys.trades_channel:
                engine.on_trades(data, clock())
            elif channel == keys.events_channel:
                engine.on_tracker_event(data, clock())
            elif channel == keys.rules_changed_channel:
                engine.changed(data)
    finally:
        subscription.close()


def _by_series(payload: str, what: str) -> dict[str, list[dict[str, Any]]]:
    """The items of a published batch (a JSON array of objects with a ``series``), grouped by
    series in order; a message that is not JSON is logged and gives nothing."""
    try:
        items = json.loads(payload)
    except ValueError:
        log.warning("ignoring a %s message that is not JSON", what)
        return {}
    observed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("series"), str):
            observed[item["series"]].append(item)
    return observed
