"""Secrets never leave the process: webhook URL paths and queries, the Redis password, the API
token and the command notifier's secret arguments and environment are masked in `bcx config
check`, in every log line, in delivery records and dead letters, in the API and in errors."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from bcx.cli import main
from bcx.config import mask_url
from bcx.events import TriggerEvent
from bcx.keys import Keys
from bcx.secrets import RedactingFilter, Redactor, mask_command
from bcx.server.notifiers import DeliveryError, WebhookNotifier
from bcx.tracker.run import Tracker, tracker_client
from tests import trackerkit
from tests.api_support import create, make_config
from tests.server_support import WebhookReceiver, publish_events
from tests.support import RedisServer, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
PATH_SECRET = "XXXXPATHSECRET"
QUERY_SECRET = "QQQQQUERYSECRET"
REDIS_PASSWORD = "redis-pw-SECRET"
API_SECRET = "api-token-SECRET"
CMD_SECRET = "cmd-arg-SECRET"
ENV_SECRET = "env-token-SECRET"
SECRETS = (PATH_SECRET, QUERY_SECRET, REDIS_PASSWORD, API_SECRET, CMD_SECRET, ENV_SECRET)


def hook_url(port: int) -> str:
    """A Slack-style webhook: the token is the last path segment, plus one in the query."""
    return f"http://127.0.0.1:{port}/services/T0BCX/B0BCX/{PATH_SECRET}?token={QUERY_SECRET}"


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


# --------------------------------------------------------------------------- a real bcx server


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that wants a password."""
    server = RedisServer(tmp_path / "locked-redis")
    server.start()
    client = server.client()
    client.config_set("requirepass", REDIS_PASSWORD)
    client.close()
    yield server
    server.stop()


def locked_url(server: RedisServer) -> str:
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"


def locked_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, password=REDIS_PASSWORD,
                       decode_responses=True)


def run_server(tmp_path: Path, connection: redis.Redis, keys: Keys, config: str,
               env: dict[str, str] | None = None, dead_letters: int = 1) -> str:
    """Publish one event, run `bcx --log-level debug server` until it has recorded the event
    with ``dead_letters`` dead letters, stop it with SIGTERM; its stderr."""
    config_path = tmp_path / "bcx.conf"
    config_path.write_text(config)
    publish_events(connection, keys, 1)
    stderr_path = tmp_path / "server.log"
    clean = {name: value for name, value in os.environ.items() if not name.startswith("BCX_")}
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bcx.cli", "--log-level", "debug", "server", "--config",
             str(config_path)], cwd=ROOT, env={**clean, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(lambda: connection.llen(keys.alerts) == 1
                 and connection.llen(keys.dead_letter) == dead_letters, timeout=30,
                 message=f"the event recorded with {dead_letters} dead letter(s)")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, stderr_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    return stderr_path.read_text()


def server_config(redis_url: str, tmp_path: Path, notifiers: str, **server: str) -> str:
    lines = ["[redis]", f"url = {redis_url}", "[server]", f"notifiers = {notifiers}",
             f"log_path = {tmp_path / 'alerts.jsonl'}", "webhook_retries = 1",
             "webhook_backoff = 0s", "heartbeat_ttl = 5s"]
    lines += [f"{key} = {value}" for key, value in server.items()]
    lines += ["[web]", f"api_token = {API_SECRET}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(params=["connection-refused", "http-500"])
def webhook(request: pytest.FixtureRequest) -> Iterator[str]:
    """A secret-bearing webhook URL on loopback: nothing listening, or a receiver answering
    500 to every POST."""
    if request.param == "connection-refused":
        yield hook_url(free_port())
        return
    receiver = WebhookReceiver(status=500).start()
    yield hook_url(receiver.httpd.server_address[1])
    receiver.stop()


def test_a_failing_webhook_leaks_its_secrets_nowhere(tmp_path: Path, keys: Keys,
                                                     locked_redis: RedisServer,
                                                     webhook: str) -> None:
    connection = locked_client(locked_redis)
    stderr = run_server(tmp_path, connection, keys, server_config(
        locked_url(locked_redis), tmp_path, "log webhook", webhook_url=webhook))
    alerts = connection.lrange(keys.alerts, 0, -1)
    dead = connection.lrange(keys.dead_letter, 0, -1)
    api = create(make_config(locked_url(locked_redis))).test_client().get("/api/v1.0/alerts")
    assert api.status_code == 200
    assert leaked(stderr) == []
    assert leaked("".join(alerts)) == []
    assert leaked("".join(dead)) == []
    assert leaked(api.get_data(as_text=True)) == []
    # Still worth reading: the failure says what went wrong and where (scheme, host, port).
    error = json.loads(dead[0])["failure"]["error"]
    assert "Connection refused" in error or "HTTP 500" in error, error
    assert json.loads(alerts[0])["delivery"]["notifiers"] == {"log": "ok",
                                                               "webhook": f"failed: {error}"}
    assert "webhook attempt 2/2" in stderr


def test_a_failing_command_leaks_neither_its_arguments_nor_the_environment(
        tmp_path: Path, keys: Keys, r: redis.Redis, redis_url: str) -> None:
    """The program prints its secret argument and a secret of its environment (an override
    of [web] api_token) to stderr and fails: that stderr becomes the failure text."""
    script = tmp_path / "notify.py"
    script.write_text("import os, sys\n"
                      "print('args', sys.argv[1:], 'env', os.environ['BCX_WEB_API_TOKEN'],"
                      " file=sys.stderr)\n"
                      "sys.exit(3)\n")
    command = f"{sys.executable} {script} --token {CMD_SECRET}"
    stderr = run_server(tmp_path, r, keys, server_config(redis_url, tmp_path, "command",
                                                         command=command),
                        env={"BCX_WEB_API_TOKEN": ENV_SECRET})
    dead = r.lrange(keys.dead_letter, 0, -1)
    assert leaked(stderr) == []
    assert leaked("".join(r.lrange(keys.alerts, 0, -1))) == []
    assert leaked("".join(dead)) == []
    assert "exited with status 3: args ['--token', '***'] env ***" in dead[0]


# --------------------------------------------------------------------------- bcx config check


def test_config_check_prints_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "bcx.conf"
    path.write_text(
        f"[redis]\nurl = redis://:{REDIS_PASSWORD}@10.0.0.5:6379/2\n"
        "[server]\nnotifiers = log webhook command\n"
        f"webhook_url = https://hooks.slack.com/services/T0/B0/{PATH_SECRET}?token={QUERY_SECRET}\n"
        f"command = /usr/local/bin/notify --token {CMD_SECRET} --to ops\n"
        f"[web]\napi_token = {API_SECRET}\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert leaked(result.output) == []
    assert "url = redis://:***@10.0.0.5:6379/2\n" in result.output
    assert "webhook_url = https://hooks.slack.com/***\n" in result.output
    assert "command = /usr/local/bin/notify --token *** --to ops\n" in result.output
    assert "api_token = ***\n" in result.output


def test_a_refused_secret_value_is_named_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "bcx.conf"
    path.write_text(f"[server]\nwebhook_url = ftp://hooks.example/{PATH_SECRET}\n"
                    f"[redis]\nurl = http://:{REDIS_PASSWORD}@127.0.0.1:6379/0\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert leaked(result.output) == []
    assert "[server] webhook_url = 'ftp://hooks.example/***': expected" in result.output
    assert "[redis] url = 'http://:***@127.0.0.1:6379/***': expected" in result.output


# --------------------------------------------------------------------------- mask_url


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/***"),
    ("https://discord.com/api/webhooks/123/TOKEN", "https://discord.com/***"),
    ("https://x.example/hook?token=SECRET", "https://x.example/***"),
    ("https://x.example?token=SECRET", "https://x.example/***"),
    ("https://x.example/#SECRET", "https://x.example/***"),
    ("http://u:pw@127.0.0.1:8080/hook", "http://u:***@127.0.0.1:8080/***"),
    ("http://[::1]:8080/hook", "http://[::1]:8080/***"),
])
def test_a_webhook_url_keeps_only_scheme_host_and_port(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_an_http_url_with_nothing_after_the_host_is_shown_whole() -> None:
    assert mask_url("https://hooks.example") == "https://hooks.example"
    assert mask_url("https://hooks.example:8443/") == "https://hooks.example:8443/"
    assert mask_url("https://hooks.example/x") == "https://hooks.example/***"


def test_a_user_part_without_password_is_masked_whole() -> None:
    assert mask_url("https://tok3n@hooks.example/") == "https://***@hooks.example/"
    assert mask_url("redis://tok3n@127.0.0.1:6379/0") == "redis://***@127.0.0.1:6379/0"
    # An empty password is still a password field: the user name stays.
    assert mask_url("redis://default:@127.0.0.1:6379/0") == "redis://default:***@127.0.0.1:6379/0"


def test_unix_socket_urls_keep_their_socket_and_db() -> None:
    assert mask_url("unix:///run/redis.sock?db=0") == "unix:///run/redis.sock?db=0"
    assert mask_url("unix://:pw@/run/redis.sock?db=1") == "unix://:***@/run/redis.sock?db=1"
    assert (mask_url("unix:///run/redis.sock?db=0&password=pw")
            == "unix:///run/redis.sock?db=0&password=***")


def test_rediss_urls_keep_tls_scheme_host_port_and_db() -> None:
    assert mask_url("rediss://u:pw@redis.example:6380/2") == "rediss://u:***@redis.example:6380/2"
    assert mask_url("rediss://u:pw@[::1]:6380/2") == "rediss://u:***@[::1]:6380/2"
    assert (mask_url("rediss://redis.example:6380/2?ssl_cert_reqs=none&password=pw")
            == "rediss://redis.example:6380/2?ssl_cert_reqs=none&password=***")


def test_a_command_line_keeps_its_program_and_plain_arguments() -> None:
    assert (mask_command("/bin/notify --to ops --api-key=K1 TOKEN=K2 -p x https://h/K3")
            == "/bin/notify --to ops --api-key=*** TOKEN=*** -p x https://h/***")


# --------------------------------------------------------------------------- scrubbing


def test_a_refused_webhook_says_where_without_its_secret() -> None:
    """requests re-quotes the URL (``%41`` -> ``A``) before its exception shows the path."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/services/T0/B0/XXXX%50ATHSECRET?token={QUERY_SECRET}"
    notifier = WebhookNotifier(url, timeout=5, retries=0, backoff=0)
    event = TriggerEvent(rule="r", series="coinbase:BTC-USD", state="firing", kind="above",
                         value="1", threshold=0.0, message="m")
    with pytest.raises(DeliveryError) as caught:
        notifier.deliver(event, event.to_json())
    notifier.close()
    assert leaked(str(caught.value)) == []
    assert f"port={port}" in str(caught.value) and "url: ***" in str(caught.value)


def test_log_records_are_scrubbed_with_their_arguments_and_traceback() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(Redactor.for_url(hook_url(9))))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    try:
        try:
            raise OSError(f"no route to /services/T0BCX/B0BCX/{PATH_SECRET}")
        except OSError:
            logger.exception("posting to %s failed", hook_url(9))
    finally:
        logger.removeHandler(handler)
    assert leaked(stream.getvalue()) == []
    assert "posting to http://127.0.0.1:9/*** failed" in stream.getvalue()
    assert "OSError: no route to ***" in stream.getvalue()


def test_the_health_answer_shows_a_feed_url_without_its_credentials(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    port = free_port()  # nothing listens: every connection fails
    url = f"ws://feeduser:{REDIS_PASSWORD}@127.0.0.1:{port}/ws?apikey={API_SECRET}"
    config = trackerkit.tracker_config(tmp_path, redis_url,
                                       {"coinbase": (url, trackerkit.COINBASE_PRODUCTS)})
    tracker = Tracker(config, tracker_client(config))
    tracker.start()
    try:
        wait_for(lambda: tracker.stats[0].feed_down, message="the feed reported down")
        wait_for(lambda: r.hget(Keys("bcx").tracker_stats("coinbase"), "last_error"),
                 message="the feed's stats written")
    finally:
        tracker.stop()
    health = create(make_config(redis_url)).test_client().get("/api/v1.0/health").get_json()
    feed = health["exchanges"]["coinbase"]
    assert leaked(json.dumps(health)) == []
    assert leaked(json.dumps(r.xrange(Keys("bcx").events_stream))) == []  # feed_down report
    assert feed["url"] == f"ws://feeduser:***@127.0.0.1:{port}/ws?apikey=***"
    assert feed["last_error"].startswith(f"connect ws://feeduser:***@127.0.0.1:{port}/ws")
