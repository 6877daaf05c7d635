"""Live streams under gunicorn as production runs it (gevent workers): many streams share one
Redis subscription per worker and leave the rest of the API answering, a stream past
``[web] max_streams`` is refused with 503 and Retry-After, and a client that hangs up is
released at once, not at the next keep-alive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bcx import events
from bcx.keys import Keys
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from tests.cluster_support import Backend
from tests.sse_support import RawStream, close_all, gunicorn, open_streams, wait_until_all
from tests.support import wait_for
from tests.test_api_stream import subscribers

MANY = 200
LATEST = "/api/v1.0/series/coinbase/BTC-USD/latest"


@pytest.fixture
def on_backend(backend: Backend) -> Iterator[Any]:
    """A client of the standalone server or of the cluster (the test runs on both)."""
    client = backend.client()
    yield client
    client.close()


def test_many_streams_share_one_subscription_and_all_get_ticks_and_alerts(
        tmp_path: Path, backend: Backend, on_backend: Any, keys: Keys) -> None:
    r = on_backend
    store = Store(r, keys, publish_ticks=True)
    store.write([Tick("coinbase", "BTC-USD", now_ms(), "65000")])
    with gunicorn(tmp_path, backend.url, backend.mode, workers=1,
                  max_streams=str(MANY), sse_keepalive="1h") as url:
        streams = open_streams(url, MANY)
        try:
            # One worker, one subscription, however many clients.
            assert subscribers(r, keys.ticks_channel) == 1
            assert subscribers(r, keys.events_channel) == 1
            # The rest of the API keeps answering while every stream is open.
            for _ in range(5):
                assert requests.get(url + LATEST, timeout=10).status_code == 200
            ms = now_ms()
            store.write([Tick("coinbase", "BTC-USD", ms, "65001.5")])
            wait_until_all(streams, f'"time":{ms},"price":65001.5'.encode())
            alert = events.TriggerEvent("btc-high", "coinbase:BTC-USD", events.FIRING, "above",
                                        value=70001.0, threshold=70000.0)
            events.publish(r, keys, alert, maxlen=100)
            wait_until_all(streams, alert.id.encode())
            # Half of them hang up: the subscription stays, and still only one.
            close_all(streams[: MANY // 2])
            streams = streams[MANY // 2:]
            # Their slots are released: as many new clients are served again.
            wait_for(lambda: _one_more(url, streams) and len(streams) == MANY, timeout=15,
                     message="the closed streams' slots to be released")
            wait_until_all(streams, b": connected")
            assert subscribers(r, keys.ticks_channel) == 1
        finally:
            close_all(streams)
        wait_for(lambda: subscribers(r, keys.ticks_channel) == 0
                 and subscribers(r, keys.events_channel) == 0, timeout=15,
                 message="the worker to let go of Redis after its last stream")


def _one_more(url: str, streams: list[RawStream]) -> bool:
    """Opens one stream, kept in ``streams`` when it was served; whether it was."""
    stream = RawStream(url)
    if stream.read_head() == 200:
        streams.append(stream)
        return True
    stream.close()
    return False


def test_latest_keeps_answering_with_streams_on_every_worker(tmp_path: Path, redis_url: str,
                                                             r: Any, keys: Keys) -> None:
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms(), "65000")])
    with gunicorn(tmp_path, redis_url, workers=2, max_streams=str(MANY)) as url:
        streams = open_streams(url, MANY)
        try:
            # Each worker that holds streams has exactly one subscription.
            assert 1 <= subscribers(r, keys.ticks_channel) <= 2
            session = requests.Session()
            for _ in range(20):
                response = session.get(url + LATEST, timeout=10)
                assert response.status_code == 200 and response.json()["price"] == 65000
        finally:
            close_all(streams)


def test_stream_past_max_streams_is_503_with_retry_after(tmp_path: Path, redis_url: str,
                                                         r: Any, keys: Keys) -> None:
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms(), "65000")])
    with gunicorn(tmp_path, redis_url, workers=1, max_streams="3") as url:
        streams = open_streams(url, 3)  # exactly the maximum: all served
        extra = RawStream(url)
        try:
            assert extra.read_head() == 503
            assert extra.headers["retry-after"] == "5"
            assert extra.headers["content-type"].startswith("application/json")
            assert b"3 streams" in extra.data or b"3 streams" in extra.sock.recv(65536)
            # The refusal is immediate and the rest of the API is unaffected.
            assert requests.get(url + LATEST, timeout=10).status_code == 200
        finally:
            extra.close()
            close_all(streams)


def test_client_that_hangs_up_is_released_at_once(tmp_path: Path, redis_url: str,
                                                  r: Any, keys: Keys) -> None:
    """With a keep-alive of an hour and nothing published, only noticing the hang-up itself
    frees the one stream slot for the next client."""
    with gunicorn(tmp_path, redis_url, workers=1, max_streams="1", sse_keepalive="1h") as url:
        [first] = open_streams(url, 1)
        assert subscribers(r, keys.ticks_channel) == 1
        first.close()

        def next_client_served() -> bool:
            stream = RawStream(url)
            try:
                return stream.read_head() == 200
            finally:
                stream.close()

        wait_for(next_client_served, timeout=10, interval=0.2,
                 message="the hung-up stream's slot to be released")
        wait_for(lambda: subscribers(r, keys.ticks_channel) == 0, timeout=10,
                 message="the subscription to be let go")
