"""The notifiers on their own: log file, webhook, command, and the services (e-mail against an
aiosmtpd server, Slack, Discord, Telegram and ntfy against HTTP receivers, all on loopback)."""

from __future__ import annotations

import base64
import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bcx import config as configmod
from bcx import events
from bcx.cli import main
from bcx.events import TriggerEvent
from bcx.secrets import Redactor
from bcx.server.notifiers import (
    CommandNotifier,
    DeliveryError,
    DiscordNotifier,
    EmailNotifier,
    LogNotifier,
    NtfyNotifier,
    SlackNotifier,
    TelegramNotifier,
    WebhookNotifier,
    build,
)
from bcx.server.notifiers.base import HttpNotifier, retry_after
from tests.server_support import WebhookReceiver
from tests.smtp_support import SmtpReceiver, self_signed
from tests.support import free_port, wait_for

SERVICES = ("slack", "discord", "telegram", "ntfy")


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


# --------------------------------------------------------------------------- the services

TOKEN = "123456:TELEGRAM-SECRET"
TEMPLATE = "{state} {rule} {series} {value}/{threshold} {message} {time}"
RENDERED = "firing btc-high coinbase:BTC-USD 70001.5/70000 BTC above 2024-01-01T00:00:00Z"


@pytest.fixture
def timed_event(event: TriggerEvent) -> TriggerEvent:
    return replace(event, time=1704067200000)


def retrying(sleeps: list[float] | None = None, retries: int = 0) -> dict[str, Any]:
    recorded = sleeps if sleeps is not None else []
    return {"timeout": 5.0, "retries": retries, "backoff": 0.25, "sleep": recorded.append,
            "redact": Redactor({TOKEN: "***"})}


def service(name: str, receiver: WebhookReceiver, template: str = TEMPLATE,
            **kwargs: Any) -> HttpNotifier:
    """The HTTP notifier ``name`` aimed at ``receiver``."""
    if name == "slack":
        return SlackNotifier(receiver.url, template, **retrying(**kwargs))
    if name == "discord":
        return DiscordNotifier(receiver.url, template, **retrying(**kwargs))
    if name == "telegram":
        receiver.answer = b'{"ok":true,"result":{}}'
        return TelegramNotifier(TOKEN, "-1001", receiver.url.removesuffix("/hook"), template,
                                **retrying(**kwargs))
    return NtfyNotifier(receiver.url, "tk_ntfy", "BCX {rule}", template, **retrying(**kwargs))


def test_slack_posts_the_rendered_text(receiver: WebhookReceiver, timed_event: TriggerEvent):
    service("slack", receiver).deliver(timed_event, timed_event.to_json())
    assert receiver.bodies == [{"text": RENDERED}]
    assert receiver.headers[0]["Content-Type"] == "application/json"


def test_discord_posts_the_content_and_pings_nobody(receiver: WebhookReceiver,
                                                    timed_event: TriggerEvent):
    service("discord", receiver).deliver(timed_event, timed_event.to_json())
    assert receiver.bodies == [{"content": RENDERED, "allowed_mentions": {"parse": []}}]


def test_telegram_calls_send_message_with_the_chat_and_text(receiver: WebhookReceiver,
                                                            timed_event: TriggerEvent):
    service("telegram", receiver).deliver(timed_event, timed_event.to_json())
    assert receiver.paths == [f"/bot{TOKEN}/sendMessage"]
    assert receiver.bodies == [{"chat_id": "-1001", "text": RENDERED}]


def test_telegram_not_ok_is_a_failure_not_retried(receiver: WebhookReceiver,
                                                  timed_event: TriggerEvent):
    notifier = service("telegram", receiver, retries=3)
    receiver.answer = b'{"ok":false,"description":"Bad Request: chat not found"}'
    with pytest.raises(DeliveryError, match="chat not found.*not retried") as caught:
        notifier.deliver(timed_event, timed_event.to_json())
    assert caught.value.attempts == 1


def test_ntfy_posts_the_text_with_title_tags_priority_and_token(receiver: WebhookReceiver,
                                                                timed_event: TriggerEvent):
    service("ntfy", receiver).deliver(timed_event, timed_event.to_json())
    assert receiver.raw == [RENDERED.encode()]
    headers = receiver.headers[0]
    assert headers["Title"] == "BCX btc-high"
    assert headers["Tags"] == "rotating_light"
    assert headers["Priority"] == "high"
    assert headers["Authorization"] == "Bearer tk_ntfy"


def test_ntfy_title_outside_latin1_goes_as_an_encoded_word(receiver: WebhookReceiver,
                                                           timed_event: TriggerEvent):
    notifier = NtfyNotifier(receiver.url, "", "⚠ {rule}\n{state}", "{message}", **retrying())
    notifier.deliver(replace(timed_event, state=events.RESOLVED), "")
    headers = receiver.headers[0]
    assert headers["Title"] == "=?UTF-8?B?" + base64.b64encode(
        "⚠ btc-high resolved".encode()).decode() + "?="
    assert headers["Tags"] == "white_check_mark"
    assert "Authorization" not in headers


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_that_fails_then_recovers_gets_the_event(name: str,
                                                           receiver: WebhookReceiver,
                                                           timed_event: TriggerEvent):
    sleeps: list[float] = []
    notifier = service(name, receiver, sleeps=sleeps, retries=3)
    receiver.fail_first = 2
    notifier.deliver(timed_event, timed_event.to_json())
    assert receiver.count() == 3
    assert sleeps == [0.25, 0.5]


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_that_keeps_failing_is_given_up_with_the_status(name: str,
                                                                  receiver: WebhookReceiver,
                                                                  timed_event: TriggerEvent):
    receiver.status = 502
    with pytest.raises(DeliveryError, match="HTTP 502") as caught:
        service(name, receiver, retries=2).deliver(timed_event, timed_event.to_json())
    assert caught.value.attempts == 3
    assert receiver.count() == 3


@pytest.mark.parametrize(("retry_after", "slept"), [("7", 7.0), ("0", 0.25), ("3600", 60.0)])
def test_a_429_waits_what_retry_after_asks_within_a_cap(receiver: WebhookReceiver,
                                                        timed_event: TriggerEvent,
                                                        retry_after: str, slept: float):
    sleeps: list[float] = []
    receiver.fail_first, receiver.fail_status = 1, 429
    receiver.fail_headers = {"Retry-After": retry_after}
    service("slack", receiver, sleeps=sleeps, retries=1).deliver(timed_event, "")
    assert sleeps == [slept]
    assert receiver.count() == 2


def test_telegram_429_waits_the_retry_after_of_its_answer(timed_event: TriggerEvent):
    class Answer:
        headers: dict[str, str] = {}
        text = '{"ok":false,"error_code":429,"parameters":{"retry_after":12}}'

    assert retry_after(Answer()) == 12.0  # type: ignore[arg-type]


def test_a_refused_telegram_call_does_not_show_the_token(timed_event: TriggerEvent):
    api = f"http://127.0.0.1:{free_port()}"
    notifier = TelegramNotifier(TOKEN, "1", api, TEMPLATE, **retrying())
    with pytest.raises(DeliveryError, match="ConnectionError") as caught:
        notifier.deliver(timed_event, "")
    assert TOKEN not in str(caught.value) and "TELEGRAM-SECRET" not in str(caught.value)
    assert "/bot***/sendMessage" in str(caught.value)


def test_a_long_text_is_cut_to_the_service_limit(receiver: WebhookReceiver,
                                                 timed_event: TriggerEvent):
    service("discord", receiver, template="{message}").deliver(
        replace(timed_event, message="x" * 5000), "")
    assert receiver.bodies[0]["content"] == "x" * 1999 + "…"


# --------------------------------------------------------------------------- e-mail


def mailer(smtp: SmtpReceiver, sleeps: list[float] | None = None, retries: int = 0,
           **kwargs: Any) -> EmailNotifier:
    options: dict[str, Any] = {"starttls": False, **kwargs}
    return EmailNotifier("127.0.0.1", smtp.port, sender="bcx@example.com",
                         recipients=("ops@example.com", "oncall@example.com"),
                         subject="BCX {rule} {state}", template=TEMPLATE,
                         **retrying(sleeps, retries), **options)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    server = SmtpReceiver().start()
    yield server
    server.stop()


def test_email_sends_one_message_with_subject_and_body(smtp: SmtpReceiver,
                                                       timed_event: TriggerEvent):
    mailer(smtp).deliver(timed_event, "")
    [received] = smtp.messages
    assert received.mail_from == "bcx@example.com"
    assert received.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert received.message["Subject"] == "BCX btc-high firing"
    assert received.message["To"] == "ops@example.com, oncall@example.com"
    assert received.message["X-BCX-Event-Id"] == timed_event.id
    assert received.message.get_payload(decode=True).decode().strip() == RENDERED
    assert not received.tls


def test_email_over_starttls_with_auth(tmp_path: Path, timed_event: TriggerEvent):
    """A self-signed certificate made for the test; the notifier trusts it via email_cafile."""
    cert, key = self_signed(tmp_path)
    server = SmtpReceiver(credentials=("bcx", "smtp-pw-SECRET"), tls=(cert, key)).start()
    try:
        mailer(server, starttls=True, cafile=str(cert), user="bcx",
               password="smtp-pw-SECRET").deliver(timed_event, "")
        [received] = server.messages
        assert received.tls and received.login == "bcx"
    finally:
        server.stop()


def test_email_starttls_against_an_untrusted_certificate_is_not_retried(
        tmp_path: Path, timed_event: TriggerEvent):
    cert, key = self_signed(tmp_path)
    server = SmtpReceiver(tls=(cert, key)).start()
    try:
        with pytest.raises(DeliveryError, match="certificate not trusted") as caught:
            mailer(server, retries=2, starttls=True).deliver(timed_event, "")
        assert caught.value.attempts == 1 and server.count() == 0
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_refuses_a_server_without_starttls_before_sending_the_password(
        timed_event: TriggerEvent):
    server = SmtpReceiver(credentials=("bcx", "smtp-pw-SECRET")).start()
    try:
        notifier = mailer(server, retries=2, starttls=True, user="bcx",
                          password="smtp-pw-SECRET")
        with pytest.raises(DeliveryError, match="does not offer STARTTLS.*not retried") as caught:
            notifier.deliver(timed_event, "")
        assert caught.value.attempts == 1
        assert server.count() == 0 and server.auth_failures == []
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_wrong_password_is_not_retried(timed_event: TriggerEvent):
    server = SmtpReceiver(credentials=("bcx", "right")).start()
    try:
        with pytest.raises(DeliveryError, match="answered 535.*not retried") as caught:
            mailer(server, retries=2, user="bcx", password="wrong").deliver(timed_event, "")
        assert caught.value.attempts == 1 and server.count() == 0
    finally:
        server.stop()


def test_email_temporary_failure_then_recovery(smtp: SmtpReceiver, timed_event: TriggerEvent):
    sleeps: list[float] = []
    smtp.fail_first = 2
    mailer(smtp, sleeps, retries=3).deliver(timed_event, "")
    assert smtp.attempts == 3 and smtp.count() == 1
    assert sleeps == [0.25, 0.5]


def test_email_that_keeps_failing_is_given_up(smtp: SmtpReceiver, timed_event: TriggerEvent):
    smtp.fail_first = 10
    with pytest.raises(DeliveryError, match="answered 451") as caught:
        mailer(smtp, retries=1).deliver(timed_event, "")
    assert caught.value.attempts == 2 and smtp.count() == 0


def test_email_permanent_failure_is_not_retried(smtp: SmtpReceiver, timed_event: TriggerEvent):
    smtp.fail_first, smtp.fail_reply = 10, "554 5.7.1 Message rejected"
    with pytest.raises(DeliveryError, match="answered 554.*not retried"):
        mailer(smtp, retries=3).deliver(timed_event, "")
    assert smtp.attempts == 1


def test_email_unreachable_server_is_retried(timed_event: TriggerEvent):
    notifier = EmailNotifier("127.0.0.1", free_port(), sender="a@b.c", recipients=("d@e.f",),
                             subject="s", template="t", starttls=False, **retrying(retries=1))
    with pytest.raises(DeliveryError, match="ConnectionRefusedError") as caught:
        notifier.deliver(timed_event, "")
    assert caught.value.attempts == 2


# --------------------------------------------------------------------------- config


def test_build_makes_every_service_from_the_config(tmp_path: Path):
    server = configmod.ServerConfig(
        notifiers=("email", "slack", "discord", "telegram", "ntfy"), email_host="mail",
        email_from="bcx@example.com", email_to=("ops@example.com",),
        slack_url="https://hooks.slack.com/services/T/B/X",
        discord_url="https://discord.com/api/webhooks/1/X", telegram_token=TOKEN,
        telegram_chat_id="1", ntfy_url="https://ntfy.sh/topic")
    assert [n.name for n in build(server)] == ["email", "slack", "discord", "telegram", "ntfy"]


def test_each_service_names_the_settings_it_lacks():
    server = configmod.ServerConfig(notifiers=("email", "slack", "discord", "telegram", "ntfy"),
                                    telegram_url="", email_user="bcx")
    with pytest.raises(configmod.ConfigError) as caught:
        build(server)
    text = str(caught.value)
    for key in ("email_host", "email_from", "email_to", "email_password", "slack_url",
                "discord_url", "telegram_token", "telegram_chat_id", "telegram_url",
                "ntfy_url"):
        assert f"[server] {key} is missing" in text, key
    assert "email_user and email_password together" in text


def test_a_template_with_an_unknown_placeholder_is_a_config_error(tmp_path: Path):
    path = tmp_path / "bcx.conf"
    path.write_text("[server]\nslack_template = {rule} at {price}\n"
                    "ntfy_title = {rule.__class__}\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "[server] slack_template = '{rule} at {price}'" in result.output
    assert "({price} is not one)" in result.output
    assert "({rule.__class__} is not one)" in result.output


def test_a_template_from_the_config_shapes_the_message(tmp_path: Path,
                                                       receiver: WebhookReceiver,
                                                       timed_event: TriggerEvent):
    path = tmp_path / "bcx.conf"
    path.write_text(f"[server]\nnotifiers = slack\nslack_url = {receiver.url}\n"
                    "slack_template = :rotating_light: *{rule}* {state}\n  {{literal}} {value}\n")
    config = configmod.load(str(path))
    [notifier] = build(config.server)
    notifier.deliver(timed_event, "")
    assert receiver.bodies == [{"text": ":rotating_light: *btc-high* firing\n{literal} 70001.5"}]
    assert ("slack_template = :rotating_light: *{rule}* {state}\n    {{literal}} {value}\n"
            in configmod.render(config))
