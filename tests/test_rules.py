"""The rule engine: every kind fires and resolves exactly once, `for` and cooldowns, restarts.

The engine is driven directly with an injected clock: ticks are written through the Store and
handed to ``on_ticks`` as the tracker publishes them, and ``periodic(now)`` stands for time
passing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from bcx import config as configmod
from bcx import events
from bcx.events import TriggerEvent
from bcx.keys import Keys
from bcx.store import RuleStore, Store
from bcx.ticks import Tick
from bcx.watcher.rules import RuleEngine
from bcx.watcher.state import Instance

# Every test here runs on the standalone server and on the cluster (see conftest `r`).
pytestmark = pytest.mark.usefixtures("backend")

T0 = 1_700_000_000_000
SERIES = "coinbase:BTC-USD"


def load_config(tmp_path: Path, text: str) -> configmod.Config:
    path = tmp_path / "bcx.conf"
    path.write_text(text)
    return configmod.load(str(path), env={})


def rule_config(tmp_path: Path, **keys: object) -> configmod.Config:
    body = "\n".join(f"{key} = {value}" for key, value in keys.items())
    return load_config(tmp_path, f"[rule:r]\nseries = {SERIES}\n{body}\n")


class Harness:
    """An engine plus the inputs it reacts to, at instants given in seconds after T0."""

    def __init__(self, r: redis.Redis, keys: Keys, config: configmod.Config):
        self.r, self.keys = r, keys
        self.store = Store(r, keys)
        self.engine = RuleEngine(r, keys, config, started_ms=T0)
        self.engine.start()

    def tick(self, second: float, **values: str) -> None:
        ms = T0 + int(second * 1000)
        self.store.write([Tick("coinbase", "BTC-USD", ms, **values)])
        self.engine.on_ticks(json.dumps([{"series": SERIES, "time": ms, **values}]), ms)

    def passes(self, second: float) -> None:
        self.engine.periodic(T0 + int(second * 1000))

    def feed(self, second: float, state: str, exchange: str = "coinbase") -> None:
        event = TriggerEvent(rule=f"feed_down:{exchange}", series=exchange, state=state,
                             kind="feed_down", time=T0 + int(second * 1000))
        events.publish(self.r, self.keys, event, 1000)
        self.engine.on_tracker_event(event.to_json(), T0 + int(second * 1000))

    def events(self) -> list[tuple[str, str, float]]:
        """(state, series, seconds after T0) of the watcher's own events, oldest first."""
        found = [TriggerEvent.from_json(fields["event"])
                 for _, fields in self.r.xrange(self.keys.events_stream)]
        return [(e.state, e.series, (e.time - T0) / 1000) for e in found
                if not e.rule.startswith("feed_down:")]


F, R = events.FIRING, events.RESOLVED

# kind -> (rule keys, steps, expected events). Every rule has for = 10s and a long cooldown:
# the condition starts holding at 10 s, fires at the pass at 21 s, still holds at 25 s and 30 s,
# stops holding at 40 s and stays off at 50 s.
SCENARIOS = {
    "above": ({"threshold": 100},
              [("tick", 0, {"price": "99.5"}), ("tick", 10, {"price": "100.01"}),
               ("pass", 15), ("pass", 21), ("tick", 25, {"price": "101"}), ("pass", 30),
               ("tick", 40, {"price": "100"}), ("tick", 50, {"price": "99"})]),
    "below": ({"threshold": 100},
              [("tick", 0, {"price": "100"}), ("tick", 10, {"price": "99.99"}), ("pass", 15),
               ("pass", 21), ("tick", 25, {"price": "98"}), ("pass", 30),
               ("tick", 40, {"price": "100.5"}), ("tick", 50, {"price": "101"})]),
    "cross_up": ({"threshold": 100},
                 [("tick", 0, {"price": "101"}), ("tick", 5, {"price": "99"}),
                  ("tick", 10, {"price": "100.5"}), ("pass", 15), ("pass", 21),
                  ("tick", 25, {"price": "102"}), ("pass", 30),
                  ("tick", 40, {"price": "99"}), ("tick", 50, {"price": "98"})]),
    "cross_down": ({"threshold": 100},
                   [("tick", 0, {"price": "99"}), ("tick", 5, {"price": "101"}),
                    ("tick", 10, {"price": "99.5"}), ("pass", 15), ("pass", 21),
                    ("tick", 25, {"price": "98"}), ("pass", 30),
                    ("tick", 40, {"price": "100.5"}), ("tick", 50, {"price": "101"})]),
    "change_pct": ({"threshold": 5, "window": "25s"},
                   [("tick", -20, {"price": "100"}), ("tick", 9, {"price": "104"}),
                    ("tick", 10, {"price": "105"}), ("pass", 15), ("pass", 21),
                    ("tick", 25, {"price": "105.1"}), ("pass", 30),
                    ("tick", 40, {"price": "105.2"}), ("tick", 50, {"price": "105.3"})]),
    "spread": ({"threshold": 0.1, "spread_mode": "pct"},
               [("tick", 0, {"bid": "100", "ask": "100.05"}), ("tick", 10, {"ask": "100.2"}),
                ("pass", 15), ("pass", 21), ("tick", 25, {"bid": "100.01"}), ("pass", 30),
                ("tick", 40, {"bid": "100.15"}), ("tick", 50, {"ask": "100.19"})]),
    "spread_abs": ({"kind": "spread", "threshold": 0.5, "spread_mode": "abs"},
                   [("tick", 0, {"bid": "100", "ask": "100.5"}), ("tick", 10, {"ask": "100.6"}),
                    ("pass", 15), ("pass", 21), ("tick", 25, {"ask": "101"}), ("pass", 30),
                    ("tick", 40, {"ask": "100.1"}), ("tick", 50, {"ask": "100.2"})]),
    "stale": ({"threshold": 5},
              [("tick", 0, {"price": "1"}), ("tick", 4, {"price": "1"}), ("pass", 10),
               ("pass", 15), ("pass", 21), ("pass", 25), ("pass", 30),
               ("tick", 40, {"price": "2"}), ("pass", 44), ("tick", 50, {"price": "2"})]),
    "feed_down": ({},
                  [("pass", 0), ("feed", 10, F), ("pass", 15), ("pass", 21), ("pass", 25),
                   ("pass", 30), ("feed", 40, R), ("pass", 50)]),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_kind_fires_after_for_and_resolves_exactly_once(r, keys, tmp_path, name):
    rule_keys, steps = SCENARIOS[name]
    harness = Harness(r, keys, rule_config(tmp_path, **{"kind": name, "for": "10s",
                                                        "cooldown": "1h", **rule_keys}))
    for step in steps:
        if step[0] == "tick":
            harness.tick(step[1], **step[2])
        elif step[0] == "feed":
            harness.feed(step[1], step[2])
        else:
            harness.passes(step[1])
    instance = "coinbase" if name == "feed_down" else SERIES
    assert harness.events() == [(F, instance, 21.0), (R, instance, 40.0)]


def test_event_carries_rule_name_labels_and_numbers(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="above", threshold=100))
    harness.tick(1, price="100.50")
    [(_, fields)] = r.xrange(keys.events_stream)
    event = json.loads(fields["event"])
    assert {k: event[k] for k in ("rule", "name", "labels", "series", "state", "kind", "value",
                                  "value_text", "threshold", "time", "silenced")} == {
        "rule": "conf:r", "name": "r", "labels": {}, "series": SERIES, "state": "firing",
        "kind": "above", "value": 100.5, "value_text": "100.50", "threshold": 100.0,
        "time": T0 + 1000, "silenced": False}
    assert event["id"]


def test_change_pct_value_is_a_number_as_levels_are(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="change_pct", threshold=5,
                                           window="10s"))
    harness.tick(0, price="100")
    harness.tick(12, price="106")
    harness.passes(12)
    event = json.loads(r.xrange(keys.events_stream)[-1][1]["event"])
    assert event["value"] == 6.0 and event["value_text"] is None


def test_an_event_of_an_older_version_is_read_with_a_numeric_value():
    old = json.dumps({"rule": "abc", "series": SERIES, "state": "firing", "kind": "above",
                      "value": "100.50", "threshold": 100.0, "time": 1, "message": "m",
                      "id": "x"})
    event = TriggerEvent.from_json(old)
    assert (event.value, event.value_text, event.name) == (100.5, "100.50", "abc")


def stored_harness(r, keys, tmp_path, **rule):
    from bcx.rulebook import save_rule
    config = load_config(tmp_path, "[web]\nrules_max = 10\n")
    store = RuleStore(r, keys)
    Store(r, keys).write([Tick("coinbase", "BTC-USD", T0 - 60_000, price="1")])
    saved = save_rule(store, Store(r, keys), config,
                      {"name": "hi", "series": SERIES, "threshold": 100, **rule})
    return Harness(r, keys, config), store, saved


def test_a_silenced_rule_still_records_its_events_marked_silenced(r, keys, tmp_path):
    from bcx.rulebook import silence_rule
    harness, store, saved = stored_harness(r, keys, tmp_path, cooldown=0,
                                          labels={"team": "desk"})
    silence_rule(store, harness.engine.config, saved.id, {"for": "30s"}, T0)
    harness.engine.changed(saved.id)
    harness.tick(1, price="101")   # fires inside the silence
    harness.tick(2, price="99")    # resolves inside it
    harness.tick(31, price="101")  # fires after it
    found = [json.loads(fields["event"]) for _, fields in r.xrange(keys.events_stream)]
    assert [(e["state"], e["silenced"]) for e in found] == [
        ("firing", True), ("resolved", True), ("firing", False)]
    assert found[0]["name"] == "hi" and found[0]["labels"] == {"team": "desk"}


def test_an_acknowledged_alert_does_not_repeat_until_it_resolves(r, keys, tmp_path):
    from bcx.rulebook import acknowledge
    from bcx.store import AlertLog
    harness, store, saved = stored_harness(r, keys, tmp_path, cooldown=10)
    harness.tick(1, price="101")
    [(_, fields)] = r.xrange(keys.events_stream)
    r.lpush(keys.alerts, fields["event"])  # as the server records it
    acknowledge(store, AlertLog(r, keys), json.loads(fields["event"])["id"], T0, 100)
    harness.engine.changed(saved.id)
    harness.passes(12)
    harness.passes(30)  # past two cooldowns: no repeat while acknowledged
    harness.tick(31, price="99")
    harness.tick(40, price="101")
    harness.passes(52)  # a new firing after the resolve repeats again
    assert [state for state, _, _ in harness.events()] == ["firing", "resolved", "firing",
                                                            "firing"]
    assert r.hlen(keys.rules_acks) == 0


def test_a_crossing_inside_one_batch_counts(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="cross_up", threshold=100))
    ms = T0 + 1000
    batch = [{"series": SERIES, "time": ms, "price": p} for p in ("99", "101")]
    harness.engine.on_ticks(json.dumps(batch), ms)
    assert harness.events() == [(F, SERIES, 1.0)]


def test_cross_up_does_not_fire_on_a_series_that_starts_above(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="cross_up", threshold=100))
    harness.tick(1, price="105")
    harness.passes(5)
    assert harness.events() == []


def test_cooldown_delays_the_next_firing(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="above", threshold=100,
                                           cooldown="60s"))
    harness.tick(0, price="101")
    harness.tick(10, price="99")
    harness.tick(20, price="101")  # holds again, but within the cooldown of the first firing
    harness.passes(59)
    harness.passes(60)
    assert harness.events() == [(F, SERIES, 0.0), (R, SERIES, 10.0), (F, SERIES, 60.0)]


def test_a_rule_still_firing_repeats_every_cooldown(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="above", threshold=100,
                                           cooldown="30s"))
    harness.tick(0, price="101")
    for second in (10, 29, 30, 45, 59, 61):
        harness.passes(second)
    assert harness.events() == [(F, SERIES, 0.0), (F, SERIES, 30.0), (F, SERIES, 61.0)]


def test_a_pending_for_is_reset_when_the_condition_stops(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="above", threshold=100,
                                           **{"for": "10s"}))
    harness.tick(0, price="101")
    harness.tick(8, price="99")
    harness.tick(9, price="101")
    harness.passes(12)
    harness.passes(19)
    assert harness.events() == [(F, SERIES, 19.0)]


def test_a_restarted_engine_does_not_fire_again(r, keys, tmp_path):
    config = rule_config(tmp_path, kind="above", threshold=100)
    first = Harness(r, keys, config)
    first.tick(0, price="101")
    second = Harness(r, keys, config)
    second.passes(5)
    second.tick(6, price="102")
    second.tick(7, price="99")
    assert second.events() == [(F, SERIES, 0.0), (R, SERIES, 7.0)]


def test_stale_fires_when_the_feed_stops(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="stale", threshold=30))
    for second in range(0, 60, 2):
        harness.tick(second, price="1")
        harness.passes(second + 1)
    assert harness.events() == []
    for second in range(60, 100, 1):  # the feed stopped at 58 s
        harness.passes(second)
    assert harness.events() == [(F, SERIES, 89.0)]


def test_feed_down_rule_without_series_watches_every_exchange(r, keys, tmp_path):
    config = load_config(tmp_path, "[rule:any-feed]\nkind = feed_down\ncooldown = 0s\n")
    harness = Harness(r, keys, config)
    harness.feed(1, F, "kraken")
    harness.feed(2, F, "binance")
    harness.feed(3, R, "kraken")
    assert harness.events() == [(F, "kraken", 1.0), (F, "binance", 2.0), (R, "kraken", 3.0)]


def test_feed_down_learns_a_feed_that_went_down_before_the_start(r, keys, tmp_path):
    event = TriggerEvent(rule="feed_down:coinbase", series="coinbase", state=F,
                         kind="feed_down", time=T0)
    events.publish(r, keys, event, 1000)
    harness = Harness(r, keys, rule_config(tmp_path, kind="feed_down"))
    harness.passes(1)
    assert harness.events() == [(F, "coinbase", 1.0)]


def test_stored_rules_are_evaluated_and_reloaded(r, keys, tmp_path):
    from bcx.rulebook import save_rule

    harness = Harness(r, keys, load_config(tmp_path, ""))
    saved = save_rule(RuleStore(r, keys), Store(r, keys), harness.engine.config,
                      {"name": "api-rule", "kind": "below", "series": SERIES, "threshold": 50})
    harness.engine.reload()
    harness.tick(1, price="49")
    [(_, fields)] = r.xrange(keys.events_stream)
    assert json.loads(fields["event"])["rule"] == saved.id


def test_disabled_rules_are_not_evaluated(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="above", threshold=1, enabled="no"))
    harness.tick(1, price="5")
    assert harness.events() == []


def test_change_pct_resolves_once_the_series_has_not_moved_for_a_window(r, keys, tmp_path):
    harness = Harness(r, keys, rule_config(tmp_path, kind="change_pct", threshold=5,
                                           window="60s", cooldown="0s"))
    harness.tick(0, price="100")
    harness.tick(70, price="110")  # +10% over the last minute
    harness.passes(100)  # no tick since: still +10% over the minute ending now
    harness.passes(131)  # the minute ending now saw no move
    assert harness.events() == [(F, SERIES, 70.0), (R, SERIES, 131.0)]


def test_a_restart_does_not_resolve_a_series_that_is_still_stale(r, keys, tmp_path):
    config = rule_config(tmp_path, kind="stale", threshold=30, cooldown="0s")
    first = Harness(r, keys, config)
    first.tick(0, price="1")
    first.passes(31)
    restarted = RuleEngine(r, keys, config, started_ms=T0 + 40_000)
    restarted.start()
    restarted.periodic(T0 + 41_000)
    restarted.periodic(T0 + 80_000)
    assert first.events() == [(F, SERIES, 31.0)]


def test_a_rule_removed_and_added_again_starts_afresh(r, keys, tmp_path):
    config = rule_config(tmp_path, kind="above", threshold=100, cooldown="0s")
    first = Harness(r, keys, config)
    first.tick(0, price="101")
    Harness(r, keys, load_config(tmp_path, ""))  # restarted without the rule
    assert not r.hexists(keys.rules_state, "conf:r")
    again = Harness(r, keys, rule_config(tmp_path, kind="above", threshold=100,
                                         cooldown="0s"))
    again.tick(10, price="102")
    assert again.events() == [(F, SERIES, 0.0), (F, SERIES, 10.0)]


def test_a_deleted_stored_rule_leaves_no_state_behind(r, keys, tmp_path):
    from bcx.rulebook import delete_rule, save_rule

    harness = Harness(r, keys, load_config(tmp_path, ""))
    saved = save_rule(RuleStore(r, keys), Store(r, keys), harness.engine.config,
                      {"name": "api-rule", "kind": "above", "series": SERIES, "threshold": 50})
    harness.engine.reload()
    delete_rule(RuleStore(r, keys), saved.id)
    harness.tick(1, price="51")  # evaluated before the change notice was read
    harness.engine.reload()
    assert not r.hexists(keys.rules_state, saved.id)
    assert saved.id not in harness.engine.states


def test_an_event_that_is_not_an_object_is_ignored(r, keys, tmp_path):
    bad = r.xadd(keys.events_stream, {"event": "[1]"})
    harness = Harness(r, keys, rule_config(tmp_path, kind="feed_down"))  # reads it at start
    r.xdel(keys.events_stream, bad)
    assert harness.engine.on_tracker_event("null", T0) == 0
    harness.feed(1, F)
    assert harness.events() == [(F, "coinbase", 1.0)]


def test_an_unreadable_stored_value_skips_only_its_rule(r, keys, tmp_path):
    config = load_config(tmp_path, f"""\
[rule:wide]
kind = spread
series = kraken:BTC-USD
threshold = 0.1

[rule:high]
kind = above
series = {SERIES}
threshold = 100
""")
    r.hset(keys.latest("kraken", "BTC-USD"), mapping={"bid": "sNaN", "ask": "1", "time": T0})
    harness = Harness(r, keys, config)
    harness.tick(1, price="101")
    harness.passes(2)
    assert harness.events() == [(F, SERIES, 1.0)]


def test_an_instance_entered_its_state_when_it_last_changed() -> None:
    instance = Instance()
    assert instance.step(True, 0, for_ms=0, cooldown_ms=0) == events.FIRING
    assert instance.entered == 0
    assert instance.step(False, 100, for_ms=0, cooldown_ms=0) == events.RESOLVED
    assert instance.entered == 100
    assert instance.step(False, 200, for_ms=0, cooldown_ms=0) is None
    assert instance.entered == 100  # still ok since 100


def test_a_one_ms_cooldown_repeats_the_firing_after_one_ms() -> None:
    instance = Instance()
    assert instance.step(True, 0, for_ms=0, cooldown_ms=1) == events.FIRING
    assert instance.step(True, 1, for_ms=0, cooldown_ms=1) == events.FIRING
