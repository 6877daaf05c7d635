"""What every notifier shares: the failure it raises, the retry loop with back-off, the HTTP POST
that services reached over HTTPS go through, and the message templates.

An attempt raises :class:`Retry` for a failure that may pass (a refused connection, a 5xx, a
408/425/429, an SMTP 4xx reply) and :class:`GiveUp` for one that repeating the same request
cannot change (another 4xx, an SMTP 5xx reply, STARTTLS not offered); :func:`with_retries` turns
both into the :class:`DeliveryError` the consumer dead-letters. Texts are scrubbed of secrets
(``redact``) where they are made.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import requests

from bcx.events import TriggerEvent

log = logging.getLogger("bcx.server.notifiers")

# A response that says "this request will never succeed" is not retried; these say "later".
RETRYABLE_STATUS = frozenset({408, 425, 429})
# A 429's Retry-After is obeyed up to this long: the consumer delivers one event at a time, so
# a longer wait would hold every other alert back; the next attempt finds out again.
RETRY_AFTER_MAX = 60.0
DETAIL_MAX = 200

Sleep = Callable[[float], None]
Redact = Callable[[str], str]


class DeliveryError(Exception):
    """A notifier gave up on an event after ``attempts`` tries; the message says why."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


class Notifier(Protocol):
    name: str

    def deliver(self, event: TriggerEvent, payload: str) -> None: ...

    def close(self) -> None: ...


class Retry(Exception):
    """This attempt failed and the next may not; ``wait`` is what the receiver asked for."""

    def __init__(self, error: str, wait: float = 0.0):
        super().__init__(error)
        self.wait = wait


class GiveUp(Exception):
    """This attempt failed in a way no retry can change."""


def with_retries(name: str, event: TriggerEvent, attempt: Callable[[], None], *, retries: int,
                 backoff: float, sleep: Sleep) -> None:
    """Run ``attempt`` until it returns, at most ``retries + 1`` times, waiting ``backoff``
    (doubling) between tries, or longer when the receiver asked (Retry-After)."""
    error, wait = "", 0.0
    for number in range(retries + 1):
        if number:
            sleep(max(backoff * 2 ** (number - 1), min(wait, RETRY_AFTER_MAX)))
        try:
            attempt()
            return
        except GiveUp as exc:
            raise DeliveryError(f"{exc} (not retried)", number + 1) from None
        except Retry as exc:
            error, wait = str(exc), exc.wait
        log.warning("%s attempt %d/%d for event %s failed: %s", name, number + 1, retries + 1,
                    event.id, error)
    raise DeliveryError(error, retries + 1)


def post(session: requests.Session, url: str, *, timeout: float, redact: Redact,
         detail: bool = True, **kwargs: Any) -> requests.Response:
    """One POST, redirects not followed; the 2xx response (closed), else Retry or GiveUp with
    the status and (``detail``) the start of the answer, which services use to say why."""
    try:
        response = session.post(url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        raise Retry(redact(f"{type(exc).__name__}: {exc}")) from None
    with response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        error = f"HTTP {status} {response.reason or ''}".rstrip()
        text = " ".join(response.text.split())[:DETAIL_MAX] if detail else ""
        if text:
            error = redact(f"{error}: {text}")
        if status >= 500 or status in RETRYABLE_STATUS:
            raise Retry(error, retry_after(response))
        raise GiveUp(error)


def retry_after(response: requests.Response) -> float:
    """Seconds the answer asks to wait: its Retry-After header (seconds or an HTTP date), or
    the ``parameters.retry_after`` of a Telegram Bot API error; 0 when it asks nothing."""
    header = (response.headers.get("Retry-After") or "").strip()
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return 0.0
        return max(0.0, when.timestamp() - time.time())
    try:
        body = json.loads(response.text)
        return max(0.0, float(body["parameters"]["retry_after"]))
    except (ValueError, TypeError, KeyError):
        return 0.0


# --------------------------------------------------------------------------- templates


def template_fields(event: TriggerEvent) -> dict[str, str]:
    """The values a template's placeholders name (``bcx.config.TEMPLATE_FIELDS``), as text."""
    try:
        moment = dt.datetime.fromtimestamp(int(event.time) / 1000, dt.UTC)
        when = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError, OSError):
        when = str(event.time)
    return {"rule": str(event.rule), "series": str(event.series), "state": str(event.state),
            "kind": str(event.kind), "value": _number(event.value),
            "threshold": _number(event.threshold), "message": str(event.message or ""),
            "time": when, "id": str(event.id)}


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def render(template: str, event: TriggerEvent, limit: int | None = None) -> str:
    """The template filled from the event (checked when the config was read), cut to
    ``limit`` characters with an ellipsis."""
    text = template.format(**template_fields(event))
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


def one_line(text: str) -> str:
    """A header value (a Subject, a Title): whitespace runs, newlines included, become one
    space so an event's message cannot add a header."""
    return " ".join(text.split())


class HttpNotifier:
    """A service reached by an HTTPS POST of the rendered ``template`` (one session per
    notifier); a subclass says what to POST (``send``)."""

    name = "http"

    def __init__(self, template: str, *, timeout: float, retries: int, backoff: float,
                 redact: Redact, sleep: Sleep = time.sleep,
                 session: requests.Session | None = None):
        self.template = template
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.redact = redact
        self.sleep = sleep
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "bcx-server"

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        with_retries(self.name, event, lambda: self.send(event), retries=self.retries,
                     backoff=self.backoff, sleep=self.sleep)

    def send(self, event: TriggerEvent) -> None:
        raise NotImplementedError

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return post(self.session, url, timeout=self.timeout, redact=self.redact, **kwargs)

    def close(self) -> None:
        self.session.close()
