"""Faults of the event side: `bcx server` against a Redis that is misconfigured (stops with the
setting to fix) or briefly read-only (waits it out, never loses the event in hand), and the web
app's answers while Redis is down or misconfigured."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient

from bcx.keys import Keys
from bcx.store.alerts import AlertLog
from bcx.store.errors import advice
from bcx.store.events import EventStream
from tests.api_support import create, error_of, make_config
from tests.server_support import WebhookReceiver, pending_count, publish_events
from tests.support import RedisServer, free_port, wait_for
from tests.test_server_process import GROUP, Servers
from web import errors as web_errors

API = "/api/v1.0"


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test alone: the test changes its role or its password."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def servers(tmp_path, redis_server: RedisServer, r, receiver) -> Iterator[Servers]:
    servers = Servers(tmp_path, redis_server.url, receiver.url)
    yield servers
    servers.kill_all()


# ---------------------------------------------------------------------------------- bcx server
def test_server_stops_naming_the_prefix_when_its_stream_key_holds_another_type(r, keys,
                                                                                servers):
    r.set(keys.events_stream, "another program's value")
    servers.write_config()
    process = servers.start()
    assert process.wait(timeout=30) != 0
    stderr = servers.stderr()
    assert stderr.count("[redis] prefix") == 1, stderr
    assert "WRONGTYPE" in stderr and "Traceback" not in stderr


def test_server_stops_naming_the_url_when_redis_wants_a_password(tmp_path, own_redis, receiver):
    own_redis.client().config_set("requirepass", "only-the-operator-knows")
    servers = Servers(tmp_path, own_redis.url, receiver.url)
    try:
        servers.write_config()
        process = servers.start()
        assert process.wait(timeout=30) != 0
        stderr = servers.stderr()
        assert stderr.count("[redis] url") == 1, stderr
        assert "Traceback" not in stderr
    finally:
        servers.kill_all()


class ReadOnly:
    """Redis refusing writes for a while: as a replica (READONLY) or short of the replicas
    ``min-replicas-to-write`` asks for (NOREPLICAS, which redis-py reports inside a
    transaction as "Command # 1 (…) of pipeline caused error: NOREPLICAS …")."""

    def __init__(self, how: str):
        self.how = how
        self.marker = {"replica": "ReadOnlyError", "min-replicas": "NOREPLICAS"}[how]

    def begin(self, client: redis.Redis) -> None:
        if self.how == "replica":
            client.replicaof("127.0.0.1", free_port())  # a master that never answers
        else:
            client.config_set("min-replicas-to-write", 1)

    def end(self, client: redis.Redis) -> None:
        if self.how == "replica":
            client.replicaof("NO", "ONE")
        else:
            client.config_set("min-replicas-to-write", 0)


@pytest.mark.parametrize("how", ["replica", "min-replicas"])
def test_server_waits_out_a_read_only_redis_between_delivery_and_ack(
        tmp_path, own_redis, keys: Keys, receiver: WebhookReceiver, how: str):
    """The server's Redis refuses writes while the webhook holds the first event: the event
    stays pending, is acknowledged once Redis takes writes again, and is not delivered twice;
    the server never exits."""
    fault = ReadOnly(how)
    client = own_redis.client()
    servers = Servers(tmp_path, own_redis.url, receiver.url)
    try:
        servers.write_config()
        receiver.hold_at = 1
        ids = publish_events(client, keys, 2)
        process = servers.start()
        assert receiver.holding.wait(timeout=20), "the webhook never got the first event"
        fault.begin(client)
        receiver.release.set()
        wait_for(lambda: fault.marker in servers.stderr(), timeout=20,
                 message=f"the server to meet {fault.marker} acknowledging")
        assert process.poll() is None, servers.stderr()
        assert pending_count(client, keys, GROUP) == 1
        fault.end(client)
        wait_for(lambda: pending_count(client, keys, GROUP) == 0
                 and set(receiver.ids()) == set(ids), timeout=30,
                 message="both events delivered and acknowledged once Redis takes writes")
        assert process.poll() is None, servers.stderr()
        assert receiver.ids() == ids
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in servers.stderr()
    finally:
        servers.kill_all()
        client.close()


# ---------------------------------------------------------------------------------- web app
@pytest.mark.parametrize("path", ["/alerts", "/stream"])
def test_web_answers_503_with_retry_after_when_redis_is_down(path: str) -> None:
    down = create(make_config(f"redis://127.0.0.1:{free_port()}/0")).test_client()
    response = down.get(f"{API}{path}")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "Redis is unavailable" in error_of(response)["message"]


def test_web_answers_503_on_a_misconfiguration_and_logs_the_advice_once(
        client: FlaskClient, r: redis.Redis, keys: Keys,
        caplog: pytest.LogCaptureFixture) -> None:
    r.set(keys.alerts, "another program's value")
    with caplog.at_level(logging.ERROR, logger=web_errors.__name__):
        first = client.get(f"{API}/alerts")
        second = client.get(f"{API}/alerts")
    for response in (first, second):
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "misconfigured" in error_of(response)["message"]
    advice = [record for record in caplog.records
              if record.levelno == logging.ERROR and "[redis] prefix" in record.getMessage()]
    assert len(advice) == 1


def test_advice_is_logged_again_after_its_interval(caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(web_errors.time, "monotonic", lambda: clock[0])
    advise = web_errors.AdviceLog(every=60.0)
    with caplog.at_level(logging.ERROR, logger=web_errors.__name__):
        advise("set X")
        clock[0] += 59.999
        advise("set X")
        advise("set Y")
        clock[0] += 0.001
        advise("set X")
    assert [record.getMessage() for record in caplog.records] == [
        "Redis is misconfigured: set X", "Redis is misconfigured: set Y",
        "Redis is misconfigured: set X"]


def test_a_wrong_type_inside_the_ack_transaction_names_the_prefix(r, keys: Keys) -> None:
    """redis-py prefixes an error inside a transaction with the failing command; the advice
    still reads the reply."""
    r.set(keys.alerts, "another program's value")
    stream = EventStream(r, keys)
    stream.ensure_group(GROUP)
    alerts = AlertLog(r, keys)
    with pytest.raises(redis.ResponseError) as caught:
        stream.ack_and_record(GROUP, "0-1", lambda pipe: alerts.record(
            pipe, {"id": "x"}, [], alerts_max=10, dead_letter_max=10))
    assert str(caught.value).startswith("Command # ")
    assert "[redis] prefix" in (advice(caught.value) or "")
