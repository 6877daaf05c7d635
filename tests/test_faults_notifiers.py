"""The service notifiers in a real `bcx server`: a receiver that fails and then recovers gets
the event with no dead letter; services that keep failing (refused connections or HTTP 500
answers, an SMTP server that refuses the password) each leave a dead letter whose error says
what went wrong with no secret in it, nor in the log, the alert history or `bcx config
check`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from bcx.cli import main
from bcx.keys import Keys
from tests.server_support import WebhookReceiver
from tests.smtp_support import SmtpReceiver
from tests.support import free_port
from tests.test_faults_secrets import run_server, server_config

SLACK_SECRET = "SLACKPATHSECRET"
DISCORD_SECRET = "DISCORDPATHSECRET"
TELEGRAM_SECRET = "987654:TELEGRAMTOKENSECRET"
NTFY_TOPIC = "NTFYTOPICSECRET"
NTFY_TOKEN = "tk_NTFYTOKENSECRET"
SMTP_PASSWORD = "SMTPPASSWORDSECRET"
SECRETS = (SLACK_SECRET, DISCORD_SECRET, TELEGRAM_SECRET, "TELEGRAMTOKENSECRET", NTFY_TOPIC,
           NTFY_TOKEN, SMTP_PASSWORD)
SERVICES = "email slack discord telegram ntfy"
HTTP_SERVICES = ("slack", "discord", "telegram", "ntfy")


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def service_keys(base: str, smtp_port: int, only: str = "") -> dict[str, str]:
    """Every service aimed at ``base`` (http://127.0.0.1:PORT) and the SMTP server; ``only``
    one service's URL keys."""
    if only:
        return {key: value for key, value in service_keys(base, smtp_port).items()
                if key.startswith(only) and key.endswith("_url")}
    return {"email_host": "127.0.0.1", "email_port": str(smtp_port), "email_starttls": "no",
            "email_user": "bcx", "email_password": SMTP_PASSWORD,
            "email_from": "bcx@example.com", "email_to": "ops@example.com",
            "slack_url": f"{base}/services/T0/B0/{SLACK_SECRET}",
            "discord_url": f"{base}/api/webhooks/1/{DISCORD_SECRET}",
            "telegram_token": TELEGRAM_SECRET, "telegram_chat_id": "42",
            "telegram_url": base, "ntfy_url": f"{base}/{NTFY_TOPIC}", "ntfy_token": NTFY_TOKEN,
            "retries": "1", "backoff": "0s", "timeout": "5s"}


@pytest.fixture(params=["connection-refused", "http-500"])
def failing(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "connection-refused":
        yield f"http://127.0.0.1:{free_port()}"
        return
    receiver = WebhookReceiver(status=500).start()
    yield receiver.url.removesuffix("/hook")
    receiver.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_services_that_keep_failing_are_dead_lettered_without_secrets(
        tmp_path: Path, r: redis.Redis, redis_url: str, keys: Keys, failing: str) -> None:
    smtp = SmtpReceiver(credentials=("bcx", "another password")).start()
    try:
        config = server_config(redis_url, tmp_path, f"log {SERVICES}",
                               **service_keys(failing, smtp.port))
        stderr = run_server(tmp_path, r, keys, config, dead_letters=5)
    finally:
        smtp.stop()
    alerts = r.lrange(keys.alerts, 0, -1)
    dead = [json.loads(letter) for letter in r.lrange(keys.dead_letter, 0, -1)]
    assert leaked(stderr) == [] and leaked("".join(alerts)) == []
    assert leaked(json.dumps(dead)) == []
    errors = {letter["failure"]["notifier"]: letter["failure"]["error"] for letter in dead}
    assert sorted(errors) == sorted(SERVICES.split())
    assert "answered 535" in errors["email"] and "not retried" in errors["email"]
    for name in ("slack", "discord", "telegram", "ntfy"):
        assert "Connection refused" in errors[name] or "HTTP 500" in errors[name], errors
    if "Connection refused" in errors["telegram"]:
        # Where the call was going stays readable; the token and topic do not.
        assert "/bot***/sendMessage" in errors["telegram"], errors["telegram"]
    assert json.loads(alerts[0])["delivery"]["notifiers"]["log"] == "ok"
    assert "slack attempt 2/2" in stderr


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_services_that_fail_then_recover_deliver_without_a_dead_letter(
        tmp_path: Path, r: redis.Redis, redis_url: str, keys: Keys) -> None:
    """Each service's receiver fails the first attempt (503; the SMTP server 451) and takes
    the retry."""
    receivers = {name: WebhookReceiver().start() for name in HTTP_SERVICES}
    smtp = SmtpReceiver(credentials=("bcx", SMTP_PASSWORD)).start()
    smtp.fail_first = 1
    try:
        config_keys = service_keys("http://unused.invalid", smtp.port)
        for name, receiver in receivers.items():
            receiver.fail_first, receiver.answer = 1, b'{"ok":true}'
            base = receiver.url.removesuffix("/hook")
            config_keys.update(service_keys(base, smtp.port, only=name))
        config = server_config(redis_url, tmp_path, SERVICES, **config_keys)
        stderr = run_server(tmp_path, r, keys, config, dead_letters=0)
        assert [receiver.count() for receiver in receivers.values()] == [2, 2, 2, 2]
        assert smtp.attempts == 2 and smtp.count() == 1 and smtp.messages[0].login == "bcx"
        notifiers = json.loads(r.lrange(keys.alerts, 0, -1)[0])["delivery"]["notifiers"]
        assert notifiers == dict.fromkeys(SERVICES.split(), "ok")
        assert leaked(stderr) == []
    finally:
        for receiver in receivers.values():
            receiver.stop()
        smtp.stop()


def test_config_check_masks_every_service_secret(tmp_path: Path) -> None:
    path = tmp_path / "bcx.conf"
    keys = service_keys("https://hooks.example", 587)
    keys.update(ntfy_url=f"https://ntfy.sh/{NTFY_TOPIC}",
                slack_url=f"https://hooks.slack.com/services/T0/B0/{SLACK_SECRET}")
    path.write_text(f"[server]\nnotifiers = {SERVICES}\n"
                    + "".join(f"{key} = {value}\n" for key, value in keys.items()))
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert leaked(result.output) == []
    for line in ("email_password = ***", "slack_url = https://hooks.slack.com/***",
                 "discord_url = https://hooks.example/***", "telegram_token = ***",
                 "ntfy_url = https://ntfy.sh/***", "ntfy_token = ***",
                 "telegram_url = https://hooks.example", "email_user = bcx"):
        assert f"\n{line}\n" in result.output, line


def test_a_refused_secret_is_named_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "bcx.conf"
    path.write_text(f"[server]\nslack_url = ftp://hooks.example/{SLACK_SECRET}\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert leaked(result.output) == []
    assert "[server] slack_url = 'ftp://hooks.example/***': expected" in result.output
