"""The alert server's own recovery paths, run in-process against a real redis-server: its
back-off and re-join while Redis is gone and after it comes back empty, giving up an
acknowledgement on stop (the event stays pending and is delivered again), and events trimmed
from the capped stream while pending (on this consumer or on a dead one). Each test judges
what a user sees: what the webhook got and how often, what Redis holds, what is logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from bcx.keys import Keys
from bcx.store.alerts import AlertLog
from tests.server_support import WebhookReceiver, pending_count, publish_events
from tests.support import RedisServer, free_port, wait_for
from tests.test_server import GROUP, Running, delivered, webhook

LOGGER = "bcx.server.consumer"


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (no persistence): stopped, restarted empty, or made
    a replica."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def on_own(own_redis: RedisServer, keys: Keys) -> Iterator[Running]:
    running = Running(own_redis, keys)
    yield running
    running.stop_all()


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == LOGGER and text in record.getMessage()]


def alive(running: Running) -> bool:
    return all(thread.is_alive() for _, thread, _ in running.started)


def entry_ids(client: redis.Redis, keys: Keys) -> list[str]:
    return [entry_id for entry_id, _ in client.xrange(keys.events_stream)]


def test_consumer_waits_out_a_redis_outage_and_rejoins_the_empty_redis_that_returns(
        own_redis: RedisServer, on_own: Running, keys: Keys, receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    client = own_redis.client()
    first = publish_events(client, keys, 1)
    on_own.start([webhook(receiver)])
    wait_for(delivered(receiver, set(first)), message="the event before the outage")
    wait_for(lambda: pending_count(client, keys, GROUP) == 0, message="it acknowledged")
    own_redis.stop()
    # Connection errors for a while: the consumer backs off and keeps retrying.
    wait_for(lambda: len(messages(caplog, "redis unavailable")) >= 1, timeout=20,
             message="the consumer retrying with Redis gone")
    assert alive(on_own)
    own_redis.start()  # without persistence: no stream, no group any more
    second = publish_events(client, keys, 1, start=1)
    wait_for(delivered(receiver, set(second)), timeout=30,
             message="the event published after Redis came back")
    wait_for(lambda: pending_count(client, keys, GROUP) == 0,
             message="the event acknowledged in the re-created group")
    assert receiver.ids() == first + second
    assert alive(on_own)
    assert len(messages(caplog, f"created consumer group {GROUP}")) == 2
    assert [alert["id"] for alert in AlertLog(client, keys).recent_alerts()] == second
    client.close()


def test_a_stop_while_the_ack_fails_leaves_the_event_pending_for_the_next_start(
        own_redis: RedisServer, on_own: Running, keys: Keys, receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture) -> None:
    """Delivered, then Redis refuses the record-and-XACK (a replica's READONLY) and the server
    is asked to stop: it stops, saying the event stays pending; the next start delivers it
    again (a duplicate, never a loss) and records it once."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    client = own_redis.client()
    receiver.hold_at = 1
    ids = publish_events(client, keys, 1)
    [entry] = entry_ids(client, keys)
    first = on_own.start([webhook(receiver)], name="server-a")
    assert receiver.holding.wait(timeout=20), "the webhook never got the event"
    client.replicaof("127.0.0.1", free_port())  # a master that never answers: READONLY
    try:
        receiver.release.set()
        wait_for(lambda: messages(caplog, f"acknowledging {entry} failed"), timeout=20,
                 message="the acknowledgement refused")
        first.stop.set()
        thread = on_own.started[0][1]
        thread.join(timeout=20)
        assert not thread.is_alive(), "the consumer did not stop while its ack failed"
        [gave_up] = messages(caplog, f"could not acknowledge event {entry}")
        assert "stays pending" in gave_up
    finally:
        client.replicaof("NO", "ONE")
    assert pending_count(client, keys, GROUP) == 1
    assert AlertLog(client, keys).recent_alerts() == []
    on_own.start([webhook(receiver)], name="server-a")
    wait_for(lambda: len(receiver.ids()) == 2 and pending_count(client, keys, GROUP) == 0,
             timeout=20, message="the pending event delivered again and acknowledged")
    assert receiver.ids() == ids + ids
    assert [alert["id"] for alert in AlertLog(client, keys).recent_alerts()] == ids
    client.close()


def read_then_trimmed(client: redis.Redis, keys: Keys, consumer: str) -> list[str]:
    """Three events read by ``consumer`` and left pending, then trimmed from the stream by
    its cap; their ids."""
    publish_events(client, keys, 3)
    client.xgroup_create(keys.events_stream, GROUP, id="0")
    client.xreadgroup(GROUP, consumer, {keys.events_stream: ">"}, count=3)
    trimmed = entry_ids(client, keys)
    client.xtrim(keys.events_stream, maxlen=0, approximate=False)
    return trimmed


def test_own_pending_events_trimmed_before_a_restart_are_logged_acked_and_skipped(
        r: redis.Redis, keys: Keys, receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture, redis_server: RedisServer) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    # "server-a" read the three and died before acknowledging; then the cap trimmed them.
    trimmed = read_then_trimmed(r, keys, "server-a")
    assert pending_count(r, keys, GROUP) == 3
    fresh = publish_events(r, keys, 1, start=3)
    running = Running(redis_server, keys)
    try:
        running.start([webhook(receiver)], name="server-a")
        wait_for(delivered(receiver, set(fresh)), message="the event after the trimmed ones")
        wait_for(lambda: pending_count(r, keys, GROUP) == 0,
                 message="the phantom pending entries acknowledged")
        assert receiver.ids() == fresh
        assert alive(running)
    finally:
        running.stop_all()
    # Each loss is logged once, by the re-delivery that found the entry gone (XAUTOCLAIM,
    # which also reports trimmed pending ids, finds nothing left to report).
    for entry in trimmed:
        assert messages(caplog, entry) == [
            f"event {entry} was trimmed from the stream before delivery"]
    assert [alert["id"] for alert in AlertLog(r, keys).recent_alerts()] == fresh
    assert AlertLog(r, keys).dead_letters() == []


def xautoclaims(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_xautoclaim", {}).get("calls", 0))


def test_events_trimmed_while_pending_on_a_dead_consumer_are_reported_once(
        r: redis.Redis, keys: Keys, receiver: WebhookReceiver,
        caplog: pytest.LogCaptureFixture, redis_server: RedisServer) -> None:
    """XAUTOCLAIM reports the ids of pending entries the stream no longer holds (and Redis
    drops them from the pending list): the server names them once, does not retry them, and
    goes on delivering."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    trimmed = read_then_trimmed(r, keys, "dead")
    fresh = publish_events(r, keys, 1, start=3)
    r.config_resetstat()
    running = Running(redis_server, keys)
    try:
        consumer = running.start([webhook(receiver)], name="alive", claim_idle=1.0)
        report = wait_for(lambda: messages(caplog, "were trimmed from the stream"), timeout=20,
                          message="the trimmed pending entries reported")
        assert report == [f"3 pending event(s) were trimmed from the stream before delivery: "
                          f"{', '.join(trimmed)}"]
        claims = xautoclaims(r)
        # Two more claim rounds: the loss is not reported (nor claimed) again.
        wait_for(lambda: xautoclaims(r) >= claims + 2, timeout=20,
                 message="two more claim rounds")
        wait_for(delivered(receiver, set(fresh)), message="the event after the trimmed ones")
        wait_for(lambda: pending_count(r, keys, GROUP) == 0, message="nothing pending")
        assert len(messages(caplog, "were trimmed from the stream")) == 1
        assert receiver.ids() == fresh and consumer.stats["claimed"] == 0
        assert alive(running)
    finally:
        running.stop_all()
