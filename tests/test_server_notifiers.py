"""The notifiers on their own: log file, webhook (against a loopback receiver), command."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bcx import config as configmod
from bcx import events
from bcx.events import TriggerEvent
from bcx.server.notifiers import (
    CommandNotifier,
    DeliveryError,
    LogNotifier,
    WebhookNotifier,
    build,
)
from tests.server_support import WebhookReceiver
from tests.support import free_port, wait_for


@pytest.fixture
def event() -> TriggerEvent:
    return TriggerEvent(rule="btc-high", series="coinbase:BTC-USD", state=events.FIRING,
                        kind="above", value="70001.5", threshold=70000.0, message="BTC above")



def webhook(url: str, retries: int = 0, sleeps: list[float] | None = None) -> WebhookNotifier:
    recorded = sleeps if sleeps is not None else []
    return WebhookNotifier(url, timeout=5.0, retries=retries, backoff=0.25,
                           sleep=recorded.append)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_log_notifier_appends_one_json_line_per_event(tmp_path: Path, event: TriggerEvent):
    path = tmp_path / "sub" / "alerts.jsonl"
    notifier = LogNotifier(str(path))
    second = replace(event, id="second")
    notifier.deliver(event, event.to_json())
    notifier.deliver(second, second.to_json())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["id"] for line in lines] == [event.id, "second"]
    assert lines[0]["rule"] == "btc-high"


def test_log_notifier_reports_an_unwritable_path(tmp_path: Path, event: TriggerEvent):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DeliveryError, match="cannot append"):
        LogNotifier(str(blocker / "alerts.jsonl")).deliver(event, event.to_json())


def test_webhook_posts_the_event_json_with_its_id(receiver: WebhookReceiver,
                                                  event: TriggerEvent):
    webhook(receiver.url).deliver(event, event.to_json())
    assert receiver.bodies == [json.loads(event.to_json())]
    assert receiver.headers[0]["X-BCX-Event-Id"] == event.id
    assert receiver.headers[0]["Content-Type"] == "application/json"


def test_webhook_retries_with_doubling_backoff_then_gives_up(receiver: WebhookReceiver,
                                                             event: TriggerEvent):
    receiver.status = 503
    sleeps: list[float] = []
    with pytest.raises(DeliveryError, match="HTTP 503") as caught:
        webhook(receiver.url, retries=3, sleeps=sleeps).deliver(event, event.to_json())
    assert caught.value.attempts == 4
    assert receiver.count() == 4
    assert sleeps == [0.25, 0.5, 1.0]


def test_webhook_succeeds_when_a_retry_gets_through(receiver: WebhookReceiver,
                                                    event: TriggerEvent):
    receiver.fail_first = 2
    webhook(receiver.url, retries=3).deliver(event, event.to_json())
    assert receiver.ids() == [event.id] * 3


def test_webhook_client_error_is_not_retried(receiver: WebhookReceiver, event: TriggerEvent):
    receiver.status = 400
    with pytest.raises(DeliveryError, match="not retried") as caught:
        webhook(receiver.url, retries=3).deliver(event, event.to_json())
    assert caught.value.attempts == 1
    assert receiver.count() == 1


def test_webhook_unreachable_is_retried_then_a_delivery_error(event: TriggerEvent):
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(DeliveryError, match="ConnectionError") as caught:
        webhook(url, retries=1, sleeps=sleeps).deliver(event, event.to_json())
    assert caught.value.attempts == 2
    assert sleeps == [0.25]


def test_command_gets_the_event_json_on_stdin(tmp_path: Path, event: TriggerEvent):
    out = tmp_path / "stdin.json"
    script = ("import os, sys; data = sys.stdin.read(); "
              f"open({str(out)!r}, 'w').write(data + os.environ['BCX_EVENT_ID'])")
    CommandNotifier([sys.executable, "-c", script], timeout=30).deliver(event, event.to_json())
    body, _, env_id = out.read_text().rpartition("\n")
    assert json.loads(body) == json.loads(event.to_json())
    assert env_id == event.id


def test_command_is_split_without_a_shell(tmp_path: Path, event: TriggerEvent):
    out = tmp_path / "a file; with $HOME"
    command = f"tee {shlex.quote(str(out))}"
    server = configmod.ServerConfig(notifiers=("command",), command=command)
    [notifier] = build(server)
    notifier.deliver(event, event.to_json())
    assert json.loads(out.read_text())["id"] == event.id


def test_command_nonzero_exit_is_a_failure_with_its_stderr(event: TriggerEvent):
    notifier = CommandNotifier(["sh", "-c", "cat >/dev/null; echo no modem >&2; exit 3"], 30)
    with pytest.raises(DeliveryError, match="status 3: no modem"):
        notifier.deliver(event, event.to_json())


def test_missing_program_is_a_failure(tmp_path: Path, event: TriggerEvent):
    with pytest.raises(DeliveryError, match="cannot run"):
        CommandNotifier([str(tmp_path / "no-such-program")], 30).deliver(event, event.to_json())


def test_hung_command_and_its_children_are_killed_at_the_timeout(tmp_path: Path,
                                                                 event: TriggerEvent):
    pids = tmp_path / "pids"
    # The shell starts a grandchild and waits on it: killing only the direct child would leave
    # `sleep 30` running, so this checks the whole process group goes.
    script = f"sleep 30 & echo $$ $! > {shlex.quote(str(pids))}; wait"
    notifier = CommandNotifier(["sh", "-c", script], timeout=0.5)
    with pytest.raises(DeliveryError, match="killed after its 0.5s timeout"):
        notifier.deliver(event, event.to_json())
    shell, sleeper = (int(pid) for pid in pids.read_text().split())
    wait_for(lambda: not alive(shell) and not alive(sleeper), timeout=10,
             message="the hung command and its child to be gone")


def test_build_refuses_an_active_notifier_without_its_setting():
    server = configmod.ServerConfig(notifiers=("log", "webhook", "command"))
    with pytest.raises(configmod.ConfigError) as caught:
        build(server, "bcx.conf")
    text = str(caught.value)
    assert "[server] webhook_url is missing" in text
    assert "[server] command is missing" in text


def test_build_keeps_the_configured_order(tmp_path: Path):
    server = configmod.ServerConfig(notifiers=("webhook", "log"), log_path=str(tmp_path / "a"),
                                    webhook_url="http://127.0.0.1:9/hook")
    assert [notifier.name for notifier in build(server)] == ["webhook", "log"]
