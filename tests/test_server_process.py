"""`bcx server` as a real process: SIGTERM, SIGKILL mid-delivery and restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bcx.store.alerts import AlertLog
from tests.cluster_support import Backend
from tests.server_support import (
    duplicates,
    log_ids,
    pending_count,
    publish_events,
)
from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent
GROUP = "bcx-server"



class Servers:
    """`bcx server` subprocesses sharing one config; each is killed at teardown if alive."""

    def __init__(self, tmp_path: Path, redis_url: str, webhook_url: str,
                 mode: str = "standalone"):
        self.tmp_path = tmp_path
        self.log_path = tmp_path / "alerts.jsonl"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stderr_paths: list[Path] = []
        self.config_path = tmp_path / "bcx.conf"
        self.redis_url = redis_url
        self.mode = mode
        self.webhook_url = webhook_url

    def write_config(self, consumer: str = "") -> None:
        self.config_path.write_text(
            f"[redis]\nurl = {self.redis_url}\nmode = {self.mode}\n\n"
            "[server]\nnotifiers = log webhook\n"
            f"log_path = {self.log_path}\n"
            f"webhook_url = {self.webhook_url}\n"
            "webhook_retries = 0\n"
            "claim_idle = 1s\n"
            "heartbeat_ttl = 5s\n"
            f"consumer = {consumer}\n")

    def start(self) -> subprocess.Popen[bytes]:
        env = {name: value for name, value in os.environ.items() if not name.startswith("BCX_")}
        stderr_path = self.tmp_path / f"server-{len(self.processes)}.log"
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bcx.cli", "server", "--config", str(self.config_path)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        self.processes.append(process)
        self.stderr_paths.append(stderr_path)
        return process

    def stderr(self, index: int = -1) -> str:
        return self.stderr_paths[index].read_text()

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


# Every test here runs on the standalone server and on the cluster (see conftest `r`).
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def servers(tmp_path, backend: Backend, r, receiver) -> Iterator[Servers]:
    servers = Servers(tmp_path, backend.url, receiver.url, backend.mode)
    yield servers
    servers.kill_all()


def test_sigterm_exits_zero_and_clears_the_heartbeat(r, keys, servers):
    servers.write_config()
    process = servers.start()
    wait_for(lambda: r.exists(keys.heartbeat("server")), timeout=20,
             message="the server's heartbeat")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert not r.exists(keys.heartbeat("server"))


def test_sigterm_mid_delivery_finishes_the_event_then_exits_zero(r, keys, servers, receiver):
    servers.write_config()
    receiver.hold_at = 1
    ids = publish_events(r, keys, 3)
    process = servers.start()
    assert receiver.holding.wait(timeout=20), "the webhook never got the first event"
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM: shutting down" in servers.stderr(), timeout=20,
             message="the server to log the SIGTERM")
    receiver.release.set()
    assert process.wait(timeout=20) == 0
    # The event in hand was delivered and acknowledged; the rest were never read, so they
    # wait unclaimed in the stream for the next start rather than pending on this consumer.
    assert receiver.ids() == ids[:1]
    assert pending_count(r, keys, GROUP) == 0
    assert [alert["id"] for alert in AlertLog(r, keys).recent_alerts()] == ids[:1]


@pytest.mark.parametrize("names", [("", ""), ("server-1", "server-2")],
                         ids=["default-name", "new-name"])
def test_a_killed_server_delivers_everything_after_restart(r, keys, servers, receiver, names):
    """SIGKILL while the webhook holds event 4, publish more while down, restart: every event
    is delivered, and the one in flight at the kill is delivered twice (at least once). The
    default consumer name is the host's, so a restart on the same host keeps its name."""
    servers.write_config(names[0])
    receiver.hold_at = 4
    before = publish_events(r, keys, 10)
    first = servers.start()
    assert receiver.holding.wait(timeout=20), "the webhook never got event 4"
    first.kill()
    first.wait(timeout=10)
    receiver.release.set()
    assert pending_count(r, keys, GROUP) == 1  # event 4: delivered, never acknowledged
    during = publish_events(r, keys, 10, start=10)
    servers.write_config(names[1])
    second = servers.start()
    expected = before + during
    wait_for(lambda: set(receiver.ids()) >= set(expected), timeout=30,
             message="every event at the webhook after restart")
    wait_for(lambda: pending_count(r, keys, GROUP) == 0, timeout=30,
             message="every event acknowledged")
    assert set(receiver.ids()) == set(expected)
    assert duplicates(receiver.ids()) == {before[3]: 2}
    assert duplicates(log_ids(servers.log_path)) == {before[3]: 2}
    restarted = receiver.ids()[4:]
    if names[0] == names[1]:
        # Same name: its own pending event first, then the rest in stream order.
        assert restarted == expected[3:]
    else:
        # New name: new events in stream order; the dead consumer's event whenever it has
        # been idle for claim_idle (at start or later, depending on how fast the restart was).
        assert [event_id for event_id in restarted if event_id != before[3]] == expected[4:]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0


def test_a_silenced_rule_is_recorded_not_delivered_and_delivery_resumes_after(
        r, keys, servers, receiver, tmp_path):
    """The engine's events during a silence reach the alert history, marked, and no notifier;
    its event after the silence is delivered; an event of an older version (value as text)
    is still delivered, with its value read as a number."""
    from bcx.rulebook import silence_rule
    from bcx.store import EventStream
    from tests.test_rules import T0, stored_harness

    (tmp_path / "engine").mkdir()
    harness, store, saved = stored_harness(r, keys, tmp_path / "engine", cooldown=0)
    silence_rule(store, harness.engine.config, saved.id, {"for": "30s"}, T0)
    harness.engine.changed(saved.id)
    harness.tick(1, price="101")   # firing, silenced
    harness.tick(2, price="99")    # resolved, silenced
    harness.tick(31, price="101")  # firing after the silence
    ids = [json.loads(fields["event"])["id"] for _, fields in r.xrange(keys.events_stream)]
    EventStream(r, keys).publish(json.dumps({
        "rule": "old", "series": "coinbase:BTC-USD", "state": "firing", "kind": "above",
        "value": "100.50", "threshold": 100.0, "time": 1, "message": "m", "id": "old-1"}), 100)
    servers.write_config()
    servers.start()
    wait_for(lambda: len(AlertLog(r, keys).recent_alerts()) == 4, timeout=20,
             message="every event recorded")
    assert receiver.ids() == [ids[2], "old-1"]
    assert receiver.bodies[1]["value"] == 100.5 and receiver.bodies[1]["value_text"] == "100.50"
    delivery = {alert["id"]: alert["delivery"] for alert in AlertLog(r, keys).recent_alerts()}
    assert [(delivery[i]["silenced"], delivery[i]["notifiers"]) for i in ids] == [
        (True, {}), (True, {}), (False, {"log": "ok", "webhook": "ok"})]
    assert log_ids(servers.log_path) == [ids[2], "old-1"]
