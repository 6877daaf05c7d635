"""The webhook notifier: the event's JSON POSTed to a URL of the user's own."""

from __future__ import annotations

import time

import requests

from bcx.events import TriggerEvent
from bcx.secrets import Redactor
from bcx.server.notifiers.base import Redact, Sleep, post, with_retries


class WebhookNotifier:
    """POSTs the event JSON. Connection errors, timeouts, 5xx and 408/425/429 are retried
    ``retries`` times with exponential back-off (``backoff``, doubling; longer when a 429 says
    Retry-After); other 4xx and 3xx are not, since repeating the same request cannot change
    the answer."""

    name = "webhook"

    def __init__(self, url: str, timeout: float, retries: int, backoff: float,
                 session: requests.Session | None = None, sleep: Sleep = time.sleep,
                 redact: Redact | None = None):
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

        def attempt() -> None:
            post(self.session, self.url, timeout=self.timeout, redact=self.redact, detail=False,
                 data=payload.encode("utf-8"), headers=headers)

        with_retries(self.name, event, attempt, retries=self.retries, backoff=self.backoff,
                     sleep=self.sleep)

    def close(self) -> None:
        self.session.close()
