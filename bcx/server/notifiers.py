"""Notifiers: the ways a trigger event leaves BCX (a JSON-lines log, a webhook, a command).

Each notifier's ``deliver(event, payload)`` returns when the event was handed over and raises
:class:`DeliveryError` when it gave up on it; ``payload`` is the event's JSON. Failure texts are
scrubbed of secrets (``redact``) where they are made: an exception of requests embeds the
webhook URL's path, where services such as Slack keep their token. Retries live
inside the notifier that needs them (the webhook), so the consumer only sees "done" or "gave up".
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Protocol

import requests

from bcx import config as configmod
from bcx.events import TriggerEvent
from bcx.secrets import Redactor

log = logging.getLogger(__name__)

# A response that says "this request will never succeed" is not retried; these say "later".
RETRYABLE_STATUS = frozenset({408, 425, 429})
STDERR_TAIL = 500


class DeliveryError(Exception):
    """A notifier gave up on an event after ``attempts`` tries; the message says why."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


class Notifier(Protocol):
    name: str

    def deliver(self, event: TriggerEvent, payload: str) -> None: ...

    def close(self) -> None: ...


class LogNotifier:
    """Appends one JSON line per event. The file is opened per event (events are rare) so
    logrotate needs no signal, and fsynced so a delivered event survives a power cut."""

    name = "log"

    def __init__(self, path: str):
        self.path = path

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(payload + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc}") from None

    def close(self) -> None:
        pass


class WebhookNotifier:
    """POSTs the event JSON. Connection errors, timeouts, 5xx and 408/425/429 are retried
    ``retries`` times with exponential back-off (``backoff``, doubling); other 4xx and 3xx are
    not, since repeating the same request cannot change the answer."""

    name = "webhook"

    def __init__(self, url: str, timeout: float, retries: int, backoff: float,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 redact: Callable[[str], str] | None = None):
        self.url = url
        self.redact = redact or Redactor.for_url(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()
        self.sleep = sleep

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        headers = {"Content-Type": "application/json", "X-BCX-Event-Id": event.id,
                   "User-Agent": "bcx-server"}
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.session.post(self.url, data=payload.encode("utf-8"),
                                             headers=headers, timeout=self.timeout,
                                             allow_redirects=False)
            except requests.RequestException as exc:
                error = self.redact(f"{type(exc).__name__}: {exc}")
            else:
                response.close()
                if 200 <= response.status_code < 300:
                    return
                error = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                if response.status_code < 500 and response.status_code not in RETRYABLE_STATUS:
                    raise DeliveryError(f"{error} (not retried)", attempt + 1)
            log.warning("webhook attempt %d/%d for event %s failed: %s", attempt + 1,
                        self.retries + 1, event.id, error)
        raise DeliveryError(error, self.retries + 1)

    def close(self) -> None:
        self.session.close()


class CommandNotifier:
    """Runs the configured program (split with shlex, no shell) with the event JSON on stdin
    and its main fields in ``BCX_EVENT_*`` variables. A non-zero exit is a failure; past
    ``timeout`` the program's whole process group is killed, so a script's children go too."""

    name = "command"

    def __init__(self, argv: list[str], timeout: float,
                 redact: Callable[[str], str] | None = None):
        self.argv = argv
        self.timeout = timeout
        self.redact = redact or Redactor.for_section(
            configmod.ServerConfig(command=shlex.join(argv)))

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        env = dict(os.environ, BCX_EVENT_ID=event.id, BCX_EVENT_RULE=event.rule,
                   BCX_EVENT_SERIES=event.series, BCX_EVENT_STATE=event.state,
                   BCX_EVENT_MESSAGE=event.message)
        try:
            process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise DeliveryError(self.redact(f"cannot run {self.argv[0]}: {exc}")) from None
        try:
            stdout, stderr = process.communicate((payload + "\n").encode("utf-8"),
                                                 timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise DeliveryError(f"{self.argv[0]} killed after its {self.timeout:g}s "
                                "timeout") from None
        if stdout:
            log.debug("command output for event %s: %s", event.id, self._tail(stdout))
        if process.returncode != 0:
            tail = self._tail(stderr)
            raise DeliveryError(f"{self.argv[0]} exited with status {process.returncode}"
                                + (f": {tail}" if tail else ""))

    def _tail(self, output: bytes) -> str:
        """The end of the program's output, scrubbed before it is cut so no part of a
        secret survives at the cut."""
        return self.redact(output.decode("utf-8", "replace").strip())[-STDERR_TAIL:]

    def close(self) -> None:
        pass


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's process group, then reap it. A grandchild that left the group
    and kept our pipes open must not hang the server, hence the bounded final wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        process.wait()


def build(server: configmod.ServerConfig, source: str = "bcx.conf",
          sleep: Callable[[float], None] = time.sleep,
          redact: Callable[[str], str] | None = None) -> list[Notifier]:
    """The active notifiers in configured order, or ConfigError naming the key a notifier
    needs and does not have. ``sleep`` is how the webhook waits between retries; ``redact``
    scrubs failure texts (default: of the server section's own secrets)."""
    redact = redact or Redactor.for_section(server)
    problems = configmod.server_problems(server, source)
    if problems:
        raise configmod.ConfigError(problems)
    built: list[Notifier] = []
    for name in server.notifiers:
        if name == "log":
            built.append(LogNotifier(server.log_path))
        elif name == "webhook":
            built.append(WebhookNotifier(server.webhook_url, server.webhook_timeout,
                                         server.webhook_retries, server.webhook_backoff,
                                         sleep=sleep, redact=redact))
        elif name == "command":
            built.append(CommandNotifier(shlex.split(server.command), server.command_timeout,
                                         redact=redact))
    return built
