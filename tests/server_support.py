"""Test support for the alert server: a webhook receiver on loopback and event helpers."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from bcx import events
from bcx.events import TriggerEvent
from bcx.keys import Keys


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every JSON body POSTed to it (on arrival, before
    answering). It answers ``status``, after ``fail_first`` answers of ``fail_status``, and can
    hold request number ``hold_at`` (1-based) until ``release`` is set: the sender is then
    provably in the middle of delivering that event. ``raw`` and ``paths`` keep every body as
    sent (a body that is not JSON is recorded as ``{}`` in ``bodies``); ``answer`` is the body
    of a success, ``fail_headers`` the headers of a failure (Retry-After)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.fail_first = 0
        self.fail_status = 503
        self.hold_at: int | None = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.paths: list[str] = []
        self.answer = b""
        self.fail_headers: dict[str, str] = {}
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def ids(self) -> list[str]:
        with self.lock:
            return [body.get("id", "") for body in self.bodies]

    def count(self) -> int:
        with self.lock:
            return len(self.bodies)

    def _answer(self, number: int) -> int:
        if number == self.hold_at:
            self.holding.set()
            self.release.wait(timeout=60)
        return self.fail_status if number <= self.fail_first else self.status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.bodies.append(_json_or_empty(body))
                    receiver.raw.append(body)
                    receiver.paths.append(self.path)
                    receiver.headers.append(dict(self.headers))
                    number = len(receiver.bodies)
                status = receiver._answer(number)
                ok = 200 <= status < 300
                answer = receiver.answer if ok else b""
                try:
                    self.send_response(status)
                    for name, value in ({} if ok else receiver.fail_headers).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender died while we held its request

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def publish_events(connection: redis.Redis, keys: Keys, count: int, start: int = 0
                   ) -> list[str]:
    """Publish ``count`` events through the real publisher; their ids in order."""
    ids = []
    for number in range(start, start + count):
        event = TriggerEvent(rule=f"rule-{number}", series="coinbase:BTC-USD",
                             state=events.FIRING, kind="above", value=str(100 + number),
                             threshold=100.0, message=f"event {number}")
        events.publish(connection, keys, event, maxlen=10000)
        ids.append(event.id)
    return ids


def log_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line]


def duplicates(ids: list[str]) -> dict[str, int]:
    return {event_id: n for event_id, n in Counter(ids).items() if n > 1}


def pending_count(connection: redis.Redis, keys: Keys, group: str) -> int:
    return int(connection.xpending(keys.events_stream, group)["pending"])


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()
