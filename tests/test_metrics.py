"""GET /metrics: the component figures read from Redis at scrape time, and HTTP counts that
add up across gunicorn workers."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bcx.heartbeat import Heartbeat
from bcx.store import Stores
from bcx.timeutil import now_ms
from tests.api_support import create, make_config
from tests.cluster_support import Backend
from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value of a Prometheus text answer."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_metrics_show_what_the_components_wrote_to_redis(backend: Backend) -> None:
    connection = backend.client()
    stores = Stores.open(connection)
    stores.tracker_stats.write(
        {"coinbase": {"frames": 120, "ticks": 90, "rejected": 3, "rejected_skew": 2,
                      "rejected_price": 1, "gaps": 4, "reconnects": 2, "connected": 1,
                      "feed_down": 0, "last_frame_ms": now_ms()}}, {})
    Heartbeat.on(stores.heartbeats, "tracker", 60).beat(
        buffered=7, dropped=5, written=88, latency_p50_ms=1.5, latency_p99_ms=12.0)
    Heartbeat.on(stores.heartbeats, "watcher.history", 60).beat(
        series_failures=0, rollup_pass_s=0.25, trim_pass_s=0.125,
        rollup_at_ms=now_ms() - 30_000)
    Heartbeat.on(stores.heartbeats, "server", 60).beat(
        handled=10, delivered=9, failures=1, dead_lettered=1, claimed=0)
    stores.events.publish('{"x": 1}', maxlen=100)
    stores.events.publish('{"x": 2}', maxlen=100)
    stores.events.ensure_group("bcx-server")
    cfg = make_config(backend.url, backend.mode)
    app = create(cfg)
    client = app.test_client()
    assert client.get("/api/v1.0/series").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(response.get_data(as_text=True))

    feed = {"instance": "", "exchange": "coinbase"}
    assert value(found, "bcx_redis_up") == 1
    assert value(found, "bcx_tracker_frames_total", **feed) == 120
    assert value(found, "bcx_tracker_ticks_total", **feed) == 90
    assert value(found, "bcx_tracker_rejected_total", **feed) == 3
    assert value(found, "bcx_tracker_rejected_by_reason_total", **feed, reason="skew") == 2
    assert value(found, "bcx_tracker_gaps_total", **feed) == 4
    assert value(found, "bcx_tracker_reconnects_total", **feed) == 2
    assert value(found, "bcx_tracker_connected", **feed) == 1
    assert value(found, "bcx_tracker_buffered_ticks", instance="") == 7
    assert value(found, "bcx_tracker_dropped_ticks_total", instance="") == 5
    assert value(found, "bcx_tracker_store_latency_seconds", instance="",
                 quantile="0.99") == pytest.approx(0.012)
    assert value(found, "bcx_watcher_pass_duration_seconds", job="rollup") == 0.25
    assert value(found, "bcx_watcher_pass_duration_seconds", job="trim") == 0.125
    assert value(found, "bcx_watcher_rollup_lag_seconds") >= 30
    assert value(found, "bcx_server_delivered_total") == 9
    assert value(found, "bcx_server_failed_total") == 1
    assert value(found, "bcx_server_dead_lettered_total") == 1
    assert value(found, "bcx_server_pending_events") == 0
    assert value(found, "bcx_server_backlog_events") == 2
    assert value(found, "bcx_component_up", component="tracker") == 1
    assert value(found, "bcx_component_up", component="server") == 1
    route = "/api/v1.0/series"
    assert value(found, "bcx_http_requests_total", route=route, method="GET",
                 status="200") >= 1
    assert value(found, "bcx_http_request_duration_seconds_count", route=route,
                 method="GET") >= 1


def test_a_named_tracker_instance_is_labelled(backend: Backend) -> None:
    stores = Stores.open(backend.client(), tracker_instance="eu")
    stores.tracker_stats.write({"kraken": {"frames": 5}}, {})
    Heartbeat.on(stores.heartbeats, "tracker.eu", 60).beat(buffered=0, dropped=2)
    found = samples(create(make_config(backend.url, backend.mode)).test_client()
                    .get("/metrics").get_data(as_text=True))
    assert value(found, "bcx_tracker_frames_total", instance="eu", exchange="kraken") == 5
    assert value(found, "bcx_tracker_dropped_ticks_total", instance="eu") == 2


def test_metrics_answer_with_redis_down() -> None:
    cfg = make_config(f"redis://127.0.0.1:{free_port()}/0")
    response = create(cfg).test_client().get("/metrics")
    assert response.status_code == 200
    assert value(samples(response.get_data(as_text=True)), "bcx_redis_up") == 0


# ------------------------------------------------------------------ gunicorn, 2 workers


@pytest.fixture
def two_workers(tmp_path: Path, redis_url: str) -> Iterator[str]:
    port = free_port()
    conf = tmp_path / "bcx.conf"
    conf.write_text(f"[redis]\nurl = {redis_url}\n"
                    f"[web]\nbind = 127.0.0.1:{port}\nworkers = 2\nthreads = 2\n")
    env = {name: text for name, text in os.environ.items()
           if name != "PROMETHEUS_MULTIPROC_DIR"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "web/gunicorn_conf.py", "web.wsgi:app"],
        cwd=ROOT, env=dict(env, BCX_CONF=str(conf)), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode(errors="replace")


def fetch(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_request_counts_add_up_across_gunicorn_workers(two_workers: str) -> None:
    def ready() -> bool:
        try:
            return fetch(f"{two_workers}/api/v1.0/openapi.json")[0] == 200
        except OSError:
            return False

    wait_for(ready, timeout=30, message="gunicorn")
    route = "/api/v1.0/openapi.json"

    def count(text: str) -> float:
        return samples(text).get(("bcx_http_requests_total", (
            ("method", "GET"), ("route", route), ("status", "200"))), 0)

    before = count(fetch(f"{two_workers}/metrics")[1])
    asked = 40
    for _ in range(asked):
        assert fetch(f"{two_workers}{route}")[0] == 200
    # Every scrape, whichever worker answers it, sees the sum over both workers.
    seen = [count(fetch(f"{two_workers}/metrics")[1]) for _ in range(6)]
    assert seen == [before + asked] * 6
