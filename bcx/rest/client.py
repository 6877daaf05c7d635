"""The one HTTP loop every REST call goes through: a token bucket in the venue's weight
units, ``429``/``418`` waited out for ``Retry-After`` seconds (else an exponential back-off),
transient failures (connection errors, ``5xx``) retried with back-off, and a stop event that
ends any wait at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from bcx.lifecycle import Backoff
from bcx.rest.base import Request, loads

log = logging.getLogger(__name__)

TIMEOUT = 10.0
RETRIES = 6
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
# Longest Retry-After honoured; past it the request fails (the venue banned us for long).
RETRY_AFTER_MAX = 300.0


class RestError(Exception):
    """A request that failed for good (a 4xx other than 429, or retries used up)."""


class TokenBucket:
    """``capacity`` units, refilled at ``rate`` units a second; ``take`` waits for them."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic):
        self.capacity, self.rate, self.clock = capacity, rate, clock
        self.tokens = capacity
        self.at = clock()
        self.lock = threading.Lock()

    def wait_time(self, units: float) -> float:
        """Seconds until ``units`` are available; takes them when that is 0."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
            units = min(units, self.capacity)
            if self.tokens >= units:
                self.tokens -= units
                return 0.0
            return (units - self.tokens) / self.rate


class RestClient:
    """GETs against one venue's ``base_url``; thread-safe (one per venue and process)."""

    def __init__(self, base_url: str, rate: tuple[float, float], stop: threading.Event | None
                 = None, session: requests.Session | None = None, timeout: float = TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.bucket = TokenBucket(*rate)
        self.stop = stop or threading.Event()
        self.session = session or requests.Session()
        self.timeout = timeout
        self.requests = 0
        self.throttled = 0  # 429/418 answers waited out

    def fetch(self, request: Request) -> tuple[Any, dict[str, str]]:
        """(decoded JSON body, headers) of a 200 answer."""
        backoff = Backoff(BACKOFF_INITIAL, BACKOFF_MAX)
        url = self.base_url + request.path
        problem = ""
        for _ in range(RETRIES):
            self._pace(request.weight)
            try:
                response = self.session.get(url, params=request.params, timeout=self.timeout)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
                self._sleep(backoff.next())
                continue
            self.requests += 1
            if response.status_code == 200:
                return loads(response.content), dict(response.headers)
            if response.status_code in (429, 418):
                self.throttled += 1
                delay = _retry_after(response.headers.get("Retry-After"))
                delay = backoff.next() if delay is None else delay
                if delay > RETRY_AFTER_MAX:
                    raise RestError(f"{request.path}: rate limited for {delay:g}s")
                log.info("%s: %d, waiting %.2fs", request.path, response.status_code, delay)
                self._sleep(delay)
                continue
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code < 500:
                raise RestError(f"{request.path}: {problem}")
            self._sleep(backoff.next())
        raise RestError(f"{request.path}: gave up after {RETRIES} tries ({problem})")

    def _pace(self, weight: int) -> None:
        while (delay := self.bucket.wait_time(weight)) > 0:
            self._sleep(delay)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise RestError("stopped")


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the venues send a number of seconds, not a date)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
