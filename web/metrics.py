"""``GET /metrics``: the Prometheus text format, beside the API.

Two sources, so that every gunicorn worker answers the same:

- The components' figures already live in Redis (the tracker's stats hashes, the heartbeats
  and their fields, the event stream's consumer group). :class:`StoreCollector` reads them
  through the store classes at scrape time.
- HTTP requests and their latency by route are counted in each process. Under gunicorn,
  ``web/gunicorn_conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a private directory before any
  worker starts, each worker writes its counts there (prometheus_client's multiprocess mode)
  and a scrape adds up every worker's files; without it (``bcx web``, tests) the process's
  own counts are served.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bcx.config import Config
from bcx.heartbeat import tracker_component, tracker_instances
from bcx.store import Stores
from bcx.timeutil import now_ms

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
# The text format every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Per process (or per worker file in multiprocess mode); kept off the default registry so that
# building several apps in one process (tests) registers nothing twice.
_HTTP = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("bcx_http_requests", "HTTP requests answered, by route, method and status.",
                   ("route", "method", "status"), registry=_HTTP)
LATENCY = Histogram("bcx_http_request_duration_seconds",
                    "Time to answer an HTTP request (a stream: until its headers), by route.",
                    ("route", "method"), registry=_HTTP,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

# Tracker stats hash field -> (metric, help); counters unless listed in _TRACKER_GAUGES.
_TRACKER_COUNTERS = {
    "frames": ("bcx_tracker_frames", "Frames received from the exchange."),
    "ticks": ("bcx_tracker_ticks", "Ticks parsed from the exchange's frames."),
    "rejected": ("bcx_tracker_rejected", "Values the input gate rejected."),
    "parse_errors": ("bcx_tracker_parse_errors", "Frames that could not be parsed."),
    "gaps": ("bcx_tracker_gaps", "Sequence gaps seen (messages missed)."),
    "reconnects": ("bcx_tracker_reconnects", "Reconnections to the exchange."),
    "silences": ("bcx_tracker_silences", "Connections dropped for silence."),
    "venue_errors": ("bcx_tracker_venue_errors", "Error messages sent by the exchange."),
    "backfill_gaps": ("bcx_tracker_backfill_gaps", "Trade gaps found that gap fill took on."),
    "backfilled": ("bcx_tracker_backfilled", "Trades fetched from the REST API into gaps."),
    "gaps_open": ("bcx_tracker_gaps_open", "Trade gaps left open (too old, or not fetched)."),
}
_TRACKER_GAUGES = {
    "connected": ("bcx_tracker_connected", "1 while the feed is connected."),
    "feed_down": ("bcx_tracker_feed_down", "1 while the feed is considered down."),
    "consecutive_failures": ("bcx_tracker_consecutive_failures",
                             "Connection attempts failed in a row."),
}
_SERVER_COUNTERS = {
    "handled": ("bcx_server_handled", "Trigger events handled (recorded and acknowledged)."),
    "delivered": ("bcx_server_delivered", "Deliveries a notifier completed."),
    "failures": ("bcx_server_failed", "Deliveries a notifier gave up on."),
    "dead_lettered": ("bcx_server_dead_lettered", "Dead letters written."),
    "claimed": ("bcx_server_claimed", "Pending events claimed from a stalled consumer."),
}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


class StoreCollector(Collector):
    """The figures of every component, read from Redis at scrape time."""

    def __init__(self, stores: Stores, config: Config, clock: Callable[[], int] = now_ms):
        self.stores = stores
        self.config = config
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bcx_redis_up", "1 when this scrape could read Redis.")
        try:
            families = list(self._families())
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: Redis not readable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        now = self.clock()
        beats = self.stores.heartbeats.read_all()
        yield from self._components(beats)
        yield from self._tracker(beats, now)
        yield from self._watcher(beats.get("watcher.history") or {}, now)
        yield from self._server(beats.get("server") or {})

    def _components(self, beats: dict[str, dict[str, Any] | None]) -> Iterator[Metric]:
        up = GaugeMetricFamily("bcx_component_up", "1 while the component's heartbeat lives.",
                               labels=["component"])
        degraded = GaugeMetricFamily("bcx_component_degraded",
                                     "1 while the component says it is degraded.",
                                     labels=["component"])
        age = GaugeMetricFamily("bcx_component_heartbeat_age_seconds",
                                "Seconds since the component's last heartbeat.",
                                labels=["component"])
        for name, beat in sorted(beats.items()):
            up.add_metric([name], 0 if beat is None else 1)
            if beat is not None:
                degraded.add_metric([name], 1 if beat.get("degraded") else 0)
                age.add_metric([name], float(beat["age_s"]))
        yield from (up, degraded, age)

    def _tracker(self, beats: dict[str, dict[str, Any] | None], now: int) -> Iterator[Metric]:
        instances = set(tracker_instances(beats)) | {self.config.tracker.instance}
        # The configured exchanges and those of every known series (a tracker elsewhere).
        exchanges = set(self.config.exchanges) | {ex for ex, _ in self.stores.ticks.series()}
        stats = self.stores.tracker_stats.read_each(exchanges, instances)
        labels = ["instance", "exchange"]
        families = dict[str, CounterMetricFamily | GaugeMetricFamily]
        counters: families = {field: CounterMetricFamily(name, text, labels=labels)
                    for field, (name, text) in _TRACKER_COUNTERS.items()}
        gauges: families = {field: GaugeMetricFamily(name, text, labels=labels)
                  for field, (name, text) in _TRACKER_GAUGES.items()}
        by_reason = CounterMetricFamily("bcx_tracker_rejected_by_reason",
                                        "Values the input gate rejected, by reason.",
                                        labels=[*labels, "reason"])
        frame_age = GaugeMetricFamily("bcx_tracker_last_frame_age_seconds",
                                      "Seconds since the last frame from the exchange.",
                                      labels=labels)
        for (instance, exchange), found in sorted(stats.items()):
            for field, family in (*counters.items(), *gauges.items()):
                value = _number(found.get(field))
                if value is not None:
                    family.add_metric([instance, exchange], value)
            for field, value in sorted(found.items()):
                if field.startswith("rejected_") and _number(value) is not None:
                    by_reason.add_metric([instance, exchange, field[len("rejected_"):]],
                                         float(value))
            last = _number(found.get("last_frame_ms"))
            if last:
                frame_age.add_metric([instance, exchange], max(0.0, (now - last) / 1000))
        yield from counters.values()
        yield by_reason
        yield from gauges.values()
        yield frame_age

        buffered = GaugeMetricFamily("bcx_tracker_buffered_ticks",
                                     "Ticks held in memory while Redis does not take them.",
                                     labels=["instance"])
        dropped = CounterMetricFamily("bcx_tracker_dropped_ticks",
                                      "Ticks dropped because the buffer was full.",
                                      labels=["instance"])
        written = CounterMetricFamily("bcx_tracker_written_ticks", "Ticks written to Redis.",
                                      labels=["instance"])
        latency = GaugeMetricFamily("bcx_tracker_store_latency_seconds",
                                    "Receipt-to-stored latency of the ticks of the last "
                                    "heartbeat interval, by quantile.",
                                    labels=["instance", "quantile"])
        for instance in sorted(instances):
            beat = beats.get(tracker_component(instance))
            if not beat:
                continue
            for family, field in ((buffered, "buffered"), (dropped, "dropped"),
                                  (written, "written")):
                value = _number(beat.get(field))
                if value is not None:
                    family.add_metric([instance], value)
            for quantile, field in (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")):
                value = _number(beat.get(field))
                if value is not None:
                    latency.add_metric([instance, quantile], value / 1000)
        yield from (buffered, dropped, written, latency)

    def _watcher(self, beat: dict[str, Any], now: int) -> Iterator[Metric]:
        duration = GaugeMetricFamily("bcx_watcher_pass_duration_seconds",
                                     "Duration of the history manager's last pass, by job.",
                                     labels=["job"])
        for job in ("rollup", "trim"):
            value = _number(beat.get(f"{job}_pass_s"))
            if value is not None:
                duration.add_metric([job], value)
        yield duration
        lag = GaugeMetricFamily("bcx_watcher_rollup_lag_seconds",
                                "Seconds from the instant the last completed roll-up pass "
                                "covered to now.")
        covered = _number(beat.get("rollup_at_ms"))
        if covered is not None:
            lag.add_metric([], max(0.0, (now - covered) / 1000))
        yield lag
        failures = GaugeMetricFamily("bcx_watcher_series_failures",
                                     "Series that failed in the last roll-up and trim passes.")
        value = _number(beat.get("series_failures"))
        if value is not None:
            failures.add_metric([], value)
        yield failures

    def _server(self, beat: dict[str, Any]) -> Iterator[Metric]:
        for field, (name, text) in _SERVER_COUNTERS.items():
            family = CounterMetricFamily(name, text + " Since the server started.")
            value = _number(beat.get(field))
            if value is not None:
                family.add_metric([], value)
            yield family
        pending = GaugeMetricFamily("bcx_server_pending_events",
                                    "Events delivered to the server but not acknowledged.")
        backlog = GaugeMetricFamily("bcx_server_backlog_events",
                                    "Events in the stream the server has not read yet.")
        group = self.stores.events.group_info(self.config.server.group)
        if group is not None:
            pending.add_metric([], group["pending"])
            if _number(group["lag"]) is not None:
                backlog.add_metric([], float(group["lag"]))
        yield from (pending, backlog)
        letters = GaugeMetricFamily("bcx_dead_letters", "Dead letters kept in Redis.")
        letters.add_metric([], self.stores.alerts.dead_letter_count())
        yield letters


def _http_registry() -> CollectorRegistry:
    """Every worker's HTTP counts in multiprocess mode, else this process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return _HTTP
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@bp.get("/metrics")
def metrics() -> Response:
    cfg: Config = current_app.config["BCX_CONFIG"]
    stores = Stores.open(current_app.extensions["redis"], current_app.config["BCX_KEYS"],
                         tracker_instance=cfg.tracker.instance)
    store_registry = CollectorRegistry(auto_describe=False)
    store_registry.register(StoreCollector(stores, cfg))
    body = generate_latest(_http_registry()) + generate_latest(store_registry)
    return Response(body, headers={"Content-Type": CONTENT_TYPE})


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def init_app(app: Flask) -> None:
    """Count and time every request by route (the URL rule, so ``/series/<exchange>/...``
    is one route, and a path no rule matches is ``unmatched``)."""

    @app.before_request
    def started() -> None:
        g.bcx_started = time.perf_counter()

    @app.after_request
    def counted(response: Response) -> Response:
        route = _route()
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        began = g.get("bcx_started")
        if began is not None:
            LATENCY.labels(route, request.method).observe(time.perf_counter() - began)
        return response

    app.register_blueprint(bp)
