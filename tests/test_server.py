"""The delivery loop against a real redis-server and a loopback webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest
import redis

from bcx import config as configmod
from bcx import events
from bcx.events import TriggerEvent
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.server.consumer import Consumer
from bcx.server.notifiers import CommandNotifier, LogNotifier, WebhookNotifier
from bcx.store.alerts import AlertLog
from bcx.store.events import EventStream
from tests.server_support import (
    WebhookReceiver,
    duplicates,
    log_ids,
    pending_count,
    publish_events,
)
from tests.support import RedisServer, wait_for

GROUP = "bcx-server"



class Running:
    """Consumers started in background threads, stopped and joined at teardown."""

    def __init__(self, redis_server: RedisServer, keys: Keys):
        self.redis_server = redis_server
        self.keys = keys
        self.started: list[tuple[Consumer, threading.Thread, redis.Redis]] = []

    def start(self, notifiers: list, *, name: str = "test", claim_idle: float = 60.0,
              heartbeat: bool = False) -> Consumer:
        server = configmod.ServerConfig(claim_idle=claim_idle, alerts_max=50,
                                        dead_letter_max=50)
        connection = self.redis_server.client()
        beat = Heartbeat(connection, self.keys, "server", 30) if heartbeat else None
        consumer = Consumer(EventStream(connection, self.keys), AlertLog(connection, self.keys),
                            server, notifiers, threading.Event(),
                            name=name, block_ms=100, heartbeat=beat)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        self.started.append((consumer, thread, connection))
        return consumer

    def stop_all(self) -> None:
        for consumer, thread, connection in self.started:
            consumer.stop.set()
            thread.join(timeout=30)
            assert not thread.is_alive(), "a consumer did not stop"
            connection.close()


@pytest.fixture
def running(redis_server: RedisServer, r: redis.Redis, keys: Keys) -> Iterator[Running]:
    running = Running(redis_server, keys)
    yield running
    running.stop_all()


def webhook(receiver: WebhookReceiver, retries: int = 0) -> WebhookNotifier:
    return WebhookNotifier(receiver.url, timeout=5.0, retries=retries, backoff=0.0)


def delivered(receiver: WebhookReceiver, expected: set[str]) -> Callable[[], bool]:
    return lambda: set(receiver.ids()) >= expected


def test_every_event_reaches_the_webhook_exactly_once(r, keys, running, receiver):
    # Events published before the group exists are delivered too (the group starts at 0).
    ids = publish_events(r, keys, 10)
    running.start([webhook(receiver)])
    ids += publish_events(r, keys, 10, start=10)
    wait_for(delivered(receiver, set(ids)), timeout=20, message="20 webhook deliveries")
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="every event acknowledged")
    assert sorted(receiver.ids()) == sorted(ids)
    assert duplicates(receiver.ids()) == {}
    assert receiver.ids() == ids  # one consumer delivers in stream order


def test_alert_history_is_newest_first_with_each_notifier_outcome(r, keys, running, receiver,
                                                                  tmp_path):
    ids = publish_events(r, keys, 3)
    running.start([LogNotifier(str(tmp_path / "alerts.jsonl")), webhook(receiver)])
    wait_for(lambda: r.llen(keys.alerts) == 3, message="three alerts recorded")
    alerts = AlertLog(r, keys).recent_alerts(2)
    assert [alert["id"] for alert in alerts] == [ids[2], ids[1]]
    assert alerts[0]["delivery"]["notifiers"] == {"log": "ok", "webhook": "ok"}
    assert alerts[0]["delivery"]["consumer"] == "test"
    assert TriggerEvent.from_json(json.dumps(alerts[0])).rule == "rule-2"


def test_alert_history_is_capped(r, keys, running, receiver):
    ids = publish_events(r, keys, 60)
    running.start([webhook(receiver)])
    wait_for(delivered(receiver, set(ids)), timeout=30, message="60 webhook deliveries")
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="every event acknowledged")
    assert r.llen(keys.alerts) == 50
    assert AlertLog(r, keys).recent_alerts(1000)[0]["id"] == ids[-1]


def test_webhook_down_dead_letters_and_the_log_still_delivers(r, keys, running, receiver,
                                                             tmp_path):
    receiver.status = 503
    log_path = tmp_path / "alerts.jsonl"
    ids = publish_events(r, keys, 3)
    running.start([webhook(receiver, retries=2), LogNotifier(str(log_path))])
    wait_for(lambda: r.llen(keys.dead_letter) == 3, timeout=20, message="three dead letters")
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="every event acknowledged")
    assert log_ids(log_path) == ids
    assert receiver.count() == 9  # each event: one try and two retries
    letters = AlertLog(r, keys).dead_letters(10)
    assert [letter["id"] for letter in letters] == ids[::-1]
    failure = letters[0]["failure"]
    assert failure["notifier"] == "webhook"
    assert failure["attempts"] == 3
    assert "HTTP 503" in failure["error"]
    alert = AlertLog(r, keys).recent_alerts(1)[0]
    assert alert["delivery"]["notifiers"] == {"webhook": "failed: HTTP 503 Service Unavailable",
                                              "log": "ok"}


class Exploding:
    """A notifier with a bug: it raises something that is not a DeliveryError."""

    name = "exploding"

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        raise KeyError("bug")

    def close(self) -> None:
        pass


def test_a_broken_notifier_does_not_stop_the_others(r, keys, running, receiver):
    ids = publish_events(r, keys, 2)
    running.start([Exploding(), webhook(receiver)])
    wait_for(delivered(receiver, set(ids)), message="webhook deliveries")
    wait_for(lambda: r.llen(keys.dead_letter) == 2, message="two dead letters")
    assert AlertLog(r, keys).dead_letters()[0]["failure"]["error"] == "KeyError: 'bug'"



def test_a_hung_command_is_dead_lettered_and_the_webhook_still_delivers(r, keys, running,
                                                                       receiver):
    ids = publish_events(r, keys, 1)
    running.start([CommandNotifier(["sleep", "30"], timeout=0.3), webhook(receiver)])
    wait_for(delivered(receiver, set(ids)), timeout=20, message="the webhook delivery")
    wait_for(lambda: r.llen(keys.dead_letter) == 1, timeout=20, message="one dead letter")
    failure = AlertLog(r, keys).dead_letters()[0]["failure"]
    assert failure["notifier"] == "command"
    assert "killed after its 0.3s timeout" in failure["error"]

def test_tracker_feed_reports_are_acknowledged_not_delivered(r, keys, running, receiver,
                                                            tmp_path):
    # A feed_down rule turns the tracker's report into the alert; delivering the report too
    # would announce one outage twice.
    report = TriggerEvent(rule="feed_down:coinbase", series="coinbase:*", state="firing",
                          kind="feed_down", message="coinbase: 5 consecutive failed connections")
    events.publish(r, keys, report, maxlen=1000)
    ids = publish_events(r, keys, 1)
    log_path = tmp_path / "alerts.jsonl"
    running.start([webhook(receiver), LogNotifier(str(log_path))])
    wait_for(delivered(receiver, set(ids)), message="the rule event")
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="both entries acknowledged")
    assert receiver.ids() == ids
    assert log_ids(log_path) == ids
    assert [alert["id"] for alert in AlertLog(r, keys).recent_alerts()] == ids


def test_own_pending_events_are_delivered_first_on_start(r, keys, running, receiver):
    ids = publish_events(r, keys, 5)
    r.xgroup_create(keys.events_stream, GROUP, id="0")
    # "server-a" read three events and died before acknowledging them.
    r.xreadgroup(GROUP, "server-a", {keys.events_stream: ">"}, count=3)
    running.start([webhook(receiver)], name="server-a")
    wait_for(delivered(receiver, set(ids)), message="five deliveries")
    assert receiver.ids() == ids
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="every event acknowledged")


def test_events_abandoned_by_a_dead_consumer_are_claimed(r, keys, running, receiver):
    ids = publish_events(r, keys, 4)
    r.xgroup_create(keys.events_stream, GROUP, id="0")
    r.xreadgroup(GROUP, "dead", {keys.events_stream: ">"}, count=3)
    consumer = running.start([webhook(receiver)], name="alive", claim_idle=1.0)
    wait_for(delivered(receiver, set(ids)), timeout=20, message="the abandoned events")
    # The fresh event goes out at once; the three abandoned ones once idle for claim_idle.
    assert receiver.ids() == ids[3:] + ids[:3]
    assert consumer.stats["claimed"] == 3
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="every event acknowledged")


def test_an_undecodable_entry_is_dead_lettered_and_acknowledged(r, keys, running, receiver):
    r.xadd(keys.events_stream, {"event": "not json"})
    r.xadd(keys.events_stream, {"other": "field"})
    ids = publish_events(r, keys, 1)
    running.start([webhook(receiver)])
    wait_for(delivered(receiver, set(ids)), message="the good event")
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="every entry acknowledged")
    letters = AlertLog(r, keys).dead_letters()
    assert [letter["failure"]["notifier"] for letter in letters] == ["decode", "decode"]
    assert letters[1]["raw"] == {"event": "not json"}


def test_the_group_is_recreated_when_the_stream_is_deleted(r, keys, running, receiver):
    first = publish_events(r, keys, 1)
    running.start([webhook(receiver)])
    wait_for(delivered(receiver, set(first)), message="the first event")
    r.delete(keys.events_stream)
    second = publish_events(r, keys, 1, start=1)
    wait_for(delivered(receiver, set(second)), timeout=20, message="the event after deletion")
    assert receiver.ids() == first + second


def test_heartbeat_names_the_consumer_and_counts(r, keys, running, receiver):
    ids = publish_events(r, keys, 2)
    running.start([webhook(receiver)], heartbeat=True)
    wait_for(delivered(receiver, set(ids)), message="two deliveries")
    wait_for(lambda: r.hget(keys.heartbeat("server"), "consumer") == "test",
             message="the server heartbeat")
    assert r.pttl(keys.heartbeat("server")) > 0


def test_delivery_resumes_after_redis_restarts(tmp_path, keys, receiver):
    own = RedisServer(tmp_path / "redis", appendonly=True)
    own.start()
    running = Running(own, keys)
    try:
        client = own.client()
        first = publish_events(client, keys, 2)
        running.start([webhook(receiver)])
        wait_for(delivered(receiver, set(first)), message="events before the restart")
        own.stop()
        own.start()
        second = publish_events(client, keys, 2, start=2)
        wait_for(delivered(receiver, set(second)), timeout=30,
                 message="events after the restart")
        assert receiver.ids() == first + second
        wait_for(lambda: pending_count(client, keys, GROUP) == 0,
                 message="every event acknowledged")
        client.close()
    finally:
        running.stop_all()
        own.stop()
