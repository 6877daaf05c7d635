"""The SSE stream over real HTTP on loopback: live ticks and alerts, the series filter,
keep-alive comments and a disconnect that releases the Redis subscription."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from bcx import events
from bcx.keys import Keys
from bcx.redisconn import LazyCluster
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from tests.api_support import LiveServer
from tests.support import wait_for

# Every test here runs on the standalone server and on the cluster (see conftest `r`).
pytestmark = pytest.mark.usefixtures("backend")


STREAM = "/api/v1.0/stream"


class SSEClient:
    """Reads an event stream into (event, data) pairs and comment lines."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.lines = response.iter_lines(decode_unicode=True)

    def next_event(self) -> tuple[str, object]:
        """The next named event, skipping comments and the retry line."""
        name, data = None, []
        for line in self.lines:
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].strip())
            elif line == "" and name is not None:
                return name, json.loads("\n".join(data))
        raise AssertionError("stream ended")

    def next_comment(self) -> str:
        for line in self.lines:
            if line.startswith(":"):
                return line
        raise AssertionError("stream ended")


@pytest.fixture
def connect(live_server: LiveServer, r: redis.Redis, keys: Keys) -> Iterator:
    """Opens streams; on teardown closes them and waits until the server has let go of their
    subscriptions, so no stream thread outlives its test."""
    opened: list[requests.Response] = []

    def open_stream(query: str = "") -> SSEClient:
        response = requests.get(f"{live_server.url}{STREAM}{query}", stream=True,
                                timeout=(5, 15))
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        opened.append(response)
        client = SSEClient(response)
        assert client.next_comment() == ": connected"
        return client

    yield open_stream
    for response in opened:
        response.close()
    wait_for(lambda: subscribers(r, keys.ticks_channel) == 0, timeout=15,
             message="every stream of the test to end")


def subscribers(r: Any, channel: str) -> int:
    """Subscribers of ``channel`` on every node (on a cluster, a subscription lives on one)."""
    if isinstance(r, LazyCluster):
        return sum(dict(node.redis_connection.pubsub_numsub(channel)).get(channel, 0)
                   for node in r.get_nodes())
    return dict(r.pubsub_numsub(channel)).get(channel, 0)


def test_client_receives_a_tick_written_after_it_connected(connect, r: redis.Redis,
                                                           keys: Keys) -> None:
    client = connect()
    ms = now_ms()
    Store(r, keys, publish_ticks=True).write([Tick("coinbase", "BTC-USD", ms, "65000.5",
                                                   "65000.1", "65000.9")])
    assert client.next_event() == ("tick", [{"series": "coinbase:BTC-USD", "time": ms,
                                             "price": 65000.5, "bid": 65000.1,
                                             "ask": 65000.9}])


def test_series_filter_passes_only_the_named_series(connect, r: redis.Redis,
                                                    keys: Keys) -> None:
    client = connect("?series=kraken:eth-usd")
    store = Store(r, keys, publish_ticks=True)
    store.write([Tick("coinbase", "BTC-USD", now_ms(), "1")])
    store.write([Tick("kraken", "ETH-USD", now_ms(), "2")])
    name, data = client.next_event()
    assert name == "tick" and [item["series"] for item in data] == ["kraken:ETH-USD"]


def test_client_receives_trigger_events_as_alerts(connect, r: redis.Redis, keys: Keys) -> None:
    client = connect()
    event = events.TriggerEvent("btc-high", "coinbase:BTC-USD", events.FIRING, "above",
                                value=70001.0, threshold=70000.0)
    events.publish(r, keys, event, maxlen=100)
    name, data = client.next_event()
    assert name == "alert" and data["id"] == event.id and data["state"] == "firing"


def test_idle_stream_sends_keep_alive_comments(connect) -> None:
    assert connect().next_comment() == ": keep-alive"


def test_disconnect_releases_the_subscription(connect, r: redis.Redis, keys: Keys) -> None:
    client = connect()
    assert subscribers(r, keys.ticks_channel) == 1
    client.response.close()
    wait_for(lambda: subscribers(r, keys.ticks_channel) == 0
             and subscribers(r, keys.events_channel) == 0,
             timeout=15, message="the stream's pub/sub to be released")


def test_bad_series_filter_is_400(live_server: LiveServer) -> None:
    response = requests.get(f"{live_server.url}{STREAM}?series=BTC", timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] == "series"


def test_tracker_feed_reports_are_not_relayed_as_alerts(connect, r: redis.Redis,
                                                        keys: Keys) -> None:
    stream = connect()
    report = events.TriggerEvent(rule="feed_down:coinbase", series="coinbase:*",
                                 state=events.FIRING, kind="feed_down")
    alert = events.TriggerEvent(rule="conf:coinbase-down", series="coinbase:BTC-USD",
                                state=events.FIRING, kind="feed_down")
    events.publish(r, keys, report, 100)
    events.publish(r, keys, alert, 100)
    name, data = stream.next_event()
    assert (name, data["rule"]) == ("alert", "conf:coinbase-down")
