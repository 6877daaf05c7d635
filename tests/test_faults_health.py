"""Fault suite, health: one verdict for `bcx status` and /api/v1.0/health (missing, killed,
hung and degraded components, each with its reason), and the tracker's heartbeat surviving
counters that would overflow and stats writes that fail."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from flask.testing import FlaskClient

from bcx import config as configmod
from bcx.cli import main
from bcx.health import EXPECTED, judge
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.timeutil import now_ms
from bcx.tracker.stats import COUNTER_MAX, FeedStats, saturated
from bcx.tracker.writer import Writer, open_stores
from tests import trackerkit
from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1.0"


def status_json(conf: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`bcx status --json` as a separate process, as an operator or monitor runs it."""
    env = dict(os.environ, BCX_CONF=str(conf))
    done = subprocess.run([sys.executable, "-m", "bcx.cli", "status", "--json", *args],
                          env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


def states(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: (item["state"], item["reason"])
            for name, item in report["components"].items()}


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.kill()
    process.wait(timeout=30)


# ------------------------------------------------------------------ missing components


@pytest.fixture
def web_only(tmp_path: Path, redis_url: str, r: redis.Redis) -> Iterator[tuple[str, Path]]:
    """The web app alone, under gunicorn as `make run` starts it: (its URL, its config)."""
    port = free_port()
    conf = tmp_path / "bcx.conf"
    conf.write_text(f"[redis]\nurl = {redis_url}\n"
                    f"[web]\nbind = 127.0.0.1:{port}\nworkers = 1\nthreads = 2\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "web/gunicorn_conf.py", "web.wsgi:app"],
        cwd=ROOT, env=dict(os.environ, BCX_CONF=str(conf)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}", conf
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_only_the_web_app_running_is_unhealthy_naming_every_missing_component(
        web_only: tuple[str, Path], r: redis.Redis, keys: Keys):
    url, conf = web_only
    wait_for(lambda: r.exists(keys.heartbeat("web")), timeout=30, message="the web heartbeat")
    code, body = get_json(f"{url}{API}/health")
    assert code == 503
    assert body["healthy"] is False
    missing = [name for name in EXPECTED if name != "web"]
    assert states(body) == {"web": ("up", ""), **{name: ("down", "no heartbeat")
                                                  for name in missing}}
    assert body["reasons"] == [f"{name}: no heartbeat" for name in sorted(missing)]
    exit_code, report = status_json(conf)
    assert exit_code == 1
    assert states(report) == states(body)
    assert report["reasons"] == body["reasons"] and report["healthy"] is False


# ------------------------------------------------------------------ killed and hung tracker


@pytest.fixture
def tracker(tmp_path: Path, redis_url: str, r: redis.Redis,
            keys: Keys) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A `bcx tracker` process beating every 100 ms with a 60 s TTL, streaming a replay."""
    replay = ReplayServer(trackerkit.COINBASE, speed=20, loop=True)
    replay.start()
    config = trackerkit.tracker_config(tmp_path, redis_url,
                                       {"coinbase": (replay.url, trackerkit.COINBASE_PRODUCTS)},
                                       stats_interval="100ms", heartbeat_ttl="60s")
    assert config.path is not None
    process = subprocess.Popen([sys.executable, "-m", "bcx.cli", "tracker"],
                               env=dict(os.environ, BCX_CONF=config.path),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: r.hget(keys.heartbeat("tracker"), "pid") == str(process.pid),
                 timeout=30, message="the tracker's heartbeat")
        yield process, Path(config.path)
    finally:
        stop(process)
        replay.stop()


def test_a_sigkilled_tracker_reads_down_at_once_not_after_its_ttl(
        tracker: tuple[subprocess.Popen[bytes], Path], r: redis.Redis, keys: Keys,
        client: FlaskClient):
    process, conf = tracker
    assert status_json(conf, "--component", "tracker")[1]["components"]["tracker"]["up"]
    process.kill()
    process.wait(timeout=30)
    code, report = status_json(conf, "--component", "tracker")
    gone = ("down", f"process {process.pid} is gone")
    assert code == 1 and states(report) == {"tracker": gone}
    assert states(client.get(f"{API}/health").get_json())["tracker"] == gone
    # The key itself still lives: the TTL alone would have said "up" for up to a minute.
    assert r.pttl(keys.heartbeat("tracker")) > 30_000


def test_a_hung_tracker_reads_down_once_its_beats_are_late(
        tracker: tuple[subprocess.Popen[bytes], Path], r: redis.Redis, keys: Keys):
    process, conf = tracker
    process.send_signal(signal.SIGSTOP)  # alive, but no longer beating
    try:
        report = wait_for(lambda: (found := status_json(conf, "--component", "tracker")[1])
                          and not found["components"]["tracker"]["up"] and found,
                          timeout=30, interval=0.5, message="the tracker read as down")
    finally:
        process.send_signal(signal.SIGCONT)
    state, reason = states(report)["tracker"]
    assert state == "down"
    assert reason.startswith("last beat ") and reason.endswith(" ago, expected every 0.1 s")
    assert r.pttl(keys.heartbeat("tracker")) > 30_000


# ------------------------------------------------------------------ degraded


def test_a_degraded_component_reads_degraded_with_its_reason_on_both(
        r: redis.Redis, keys: Keys, redis_url: str, tmp_path: Path, client: FlaskClient):
    for name in EXPECTED:
        Heartbeat(r, keys, name, ttl=30).beat()
    since = now_ms()
    Heartbeat(r, keys, "watcher.history", ttl=30).beat(
        degraded="archive not written: [Errno 28] No space left on device",
        degraded_since_ms=since)
    response = client.get(f"{API}/health")
    assert response.status_code == 503
    body = response.get_json()
    history = body["components"]["watcher.history"]
    assert history["state"] == "degraded" and history["up"] is False
    assert history["reason"] == "archive not written: [Errno 28] No space left on device"
    assert history["degraded_since_ms"] == since
    assert body["reasons"] == [f"watcher.history: {history['reason']}"]
    conf = tmp_path / "bcx.conf"
    conf.write_text(f"[redis]\nurl = {redis_url}\n")
    result = CliRunner().invoke(main, ["status", "--config", str(conf)])
    assert result.exit_code == 1
    row = next(line for line in result.output.splitlines() if line.startswith("watcher.history"))
    assert row.split()[1] == "DEGRADED" and row.endswith("No space left on device")
    # Healthy again: the component writes an empty reason.
    Heartbeat(r, keys, "watcher.history", ttl=30).beat(degraded="", degraded_since_ms="")
    assert client.get(f"{API}/health").status_code == 200
    assert CliRunner().invoke(main, ["status", "--config", str(conf)]).exit_code == 0


# ------------------------------------------------------------------ the tracker's counters


def tracker_settings(redis_url: str, tmp_path: Path) -> configmod.TrackerConfig:
    config = trackerkit.tracker_config(tmp_path, redis_url,
                                       {"coinbase": ("ws://127.0.0.1:1/", ["BTC-USD"])},
                                       stats_interval="100ms")
    return config.tracker


def beats(r: redis.Redis, keys: Keys, count: int) -> None:
    """Wait until the tracker's heartbeat has been written ``count`` more times."""
    seen: list[str] = []

    def another() -> bool:
        time = r.hget(keys.heartbeat("tracker"), "time")
        if time is not None and (not seen or seen[-1] != time):
            seen.append(time)
        return len(seen) > count

    wait_for(another, timeout=30, message=f"{count} more tracker heartbeats")


@pytest.fixture
def writer_of(r: redis.Redis, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    writers: list[Writer] = []

    def start(feed: FeedStats) -> Writer:
        settings = tracker_settings(redis_url, tmp_path)
        writer = Writer(open_stores(r, Keys("bcx"), settings), settings, [feed])
        writers.append(writer)
        writer.start()
        return writer

    yield start
    for writer in writers:
        writer.stop()


def test_a_gap_past_2_63_saturates_the_counts_and_the_heartbeat_keeps_beating(
        r: redis.Redis, keys: Keys, writer_of: Any):
    feed = FeedStats("coinbase")
    r.hset(keys.gaps("coinbase"), "ETH-USD", 5)
    # A trade id that jumps by 2**63: more than HINCRBY can add, and overflowing what is
    # there already.
    feed.add_gaps([("BTC-USD", 2**63 + 7), ("ETH-USD", COUNTER_MAX)])
    writer_of(feed)
    beats(r, keys, 3)
    assert r.hgetall(keys.gaps("coinbase")) == {"BTC-USD": str(COUNTER_MAX),
                                                "ETH-USD": str(COUNTER_MAX)}
    assert r.hget(keys.tracker_stats("coinbase"), "gaps") == str(COUNTER_MAX)
    # Saturated counts stay where they are; later gaps keep the heartbeat going too.
    feed.add_gaps([("BTC-USD", 1)])
    beats(r, keys, 3)
    assert r.hget(keys.gaps("coinbase"), "BTC-USD") == str(COUNTER_MAX)
    assert r.hget(keys.heartbeat("tracker"), "degraded") == ""


def test_gap_counts_saturate_exactly_at_the_redis_integer_limit():
    feed = FeedStats("coinbase")
    feed.add_gaps([("BTC-USD", COUNTER_MAX - 1)])
    feed.add_gaps([("BTC-USD", 1)])
    assert feed.gaps == COUNTER_MAX and feed.take_gaps()["BTC-USD"] == COUNTER_MAX
    feed.add_gaps([("BTC-USD", 1)])
    assert feed.gaps == COUNTER_MAX and saturated(feed.as_hash())["gaps"] == COUNTER_MAX
    feed.frames = COUNTER_MAX + 1
    assert saturated(feed.as_hash())["frames"] == COUNTER_MAX


def test_a_failing_stats_write_is_a_warning_and_the_heartbeat_still_beats(
        r: redis.Redis, keys: Keys, writer_of: Any, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="bcx.tracker.writer")
    r.set(keys.tracker_stats("coinbase"), "not a hash")
    feed = FeedStats("coinbase")
    feed.add_gaps([("BTC-USD", 3)])
    writer_of(feed)
    beats(r, keys, 3)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING
                and "tracker stats not written" in record.getMessage()]
    assert warnings and "WRONGTYPE" in warnings[0].getMessage()
    # Throttled: a failure at every 100 ms interval is not a line each.
    assert len(warnings) == 1
    # The gap count, in its own key, is still written once.
    assert r.hget(keys.gaps("coinbase"), "BTC-USD") == "3"
    beat = r.hgetall(keys.heartbeat("tracker"))
    assert beat["degraded"].startswith("stats not written: ") and "WRONGTYPE" in beat["degraded"]
    assert int(beat["degraded_since_ms"]) > 0


# ------------------------------------------------------------------ freshness, at the limit


def beat_fields(age_s: float, interval_ms: int, host: str = "elsewhere") -> dict[str, Any]:
    return {"time": str(now_ms()), "pid": "1", "host": host, "ttl_ms": "60000",
            "interval_ms": str(interval_ms), "age_s": age_s}


def test_a_beat_is_late_after_three_intervals():
    assert judge("tracker", beat_fields(3.0, 1000), "here").state == "up"
    late = judge("tracker", beat_fields(3.001, 1000), "here")
    assert (late.state, late.reason) == ("down", "last beat 3 s ago, expected every 1 s")
    assert judge("server", beat_fields(42.4, 10_000), "here").reason == (
        "last beat 42 s ago, expected every 10 s")


def test_a_beat_is_never_late_within_the_floor_of_three_seconds():
    assert judge("tracker", beat_fields(3.0, 100), "here").state == "up"
    assert judge("tracker", beat_fields(3.001, 100), "here").state == "down"
