"""Several trackers side by side on one Redis, each named by ``[tracker] instance``: each has
its own heartbeat (``tracker.NAME``) and stats hashes, and stopping one never marks the other
down in ``bcx status`` or ``/api/v1.0/health``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bcx import config as configmod
from bcx.keys import Keys
from bcx.replay import ReplayServer
from tests import trackerkit
from tests.support import wait_for

PRODUCTS = trackerkit.COINBASE_PRODUCTS
keys = Keys("bcx")
EAST, WEST = PRODUCTS[:5], PRODUCTS[5:]


@pytest.fixture
def looping_replay() -> Iterator[ReplayServer]:
    server = ReplayServer(trackerkit.COINBASE, speed=20, loop=True)
    server.start()
    yield server
    server.stop()


def instance_config(tmp_path: Path, redis_url: str, name: str,
                    symbols: list[str]) -> configmod.Config:
    directory = tmp_path / name
    directory.mkdir()
    return trackerkit.tracker_config(directory, redis_url,
                                     {"coinbase": ("wss://unused.invalid", symbols)},
                                     max_clock_skew="1d", instance=name)


def env_of(config: configmod.Config, replay: ReplayServer) -> dict[str, str]:
    return dict(os.environ, BCX_CONF=str(config.path), BCX_EXCHANGE_COINBASE_URL=replay.url)


def bcx_status(config: configmod.Config, replay: ReplayServer, *args: str
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bcx.cli", "status", "--json", *args],
                          env=env_of(config, replay), capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def two_trackers(r: redis.Redis, redis_url: str, looping_replay: ReplayServer,
                 tmp_path: Path) -> Iterator[dict[str, tuple[configmod.Config,
                                                             subprocess.Popen]]]:
    running = {}
    for name, symbols in (("east", EAST), ("west", WEST)):
        config = instance_config(tmp_path, redis_url, name, symbols)
        running[name] = (config, subprocess.Popen(
            [sys.executable, "-m", "bcx.cli", "tracker"], env=env_of(config, looping_replay),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    yield running
    for _, process in running.values():
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stderr:
            process.stderr.close()


def test_two_trackers_each_beat_and_keep_their_own_stats(r: redis.Redis, two_trackers) -> None:
    for name in two_trackers:
        wait_for(lambda name=name: int(r.hget(keys.tracker_stats("coinbase", name), "ticks")
                                       or 0) > 0, timeout=20, message=f"{name}'s stats")
        assert r.exists(keys.heartbeat(f"tracker.{name}"))
    assert not r.exists(keys.tracker_stats("coinbase"), keys.heartbeat("tracker"))
    assert r.smembers(keys.components) == {"tracker.east", "tracker.west"}
    assert r.hget(keys.heartbeat("tracker.east"), "exchanges") == "coinbase"


def test_stopping_one_tracker_leaves_the_other_up(r: redis.Redis, two_trackers,
                                                  looping_replay: ReplayServer) -> None:
    for name in two_trackers:
        wait_for(lambda name=name: r.exists(keys.heartbeat(f"tracker.{name}")), timeout=20,
                 message=f"tracker.{name}'s heartbeat")
    east_config, east = two_trackers["east"]
    west_config, west = two_trackers["west"]
    east.send_signal(signal.SIGTERM)
    assert east.wait(timeout=15) == 0
    assert not r.exists(keys.heartbeat("tracker.east"))
    assert west.poll() is None

    # `bcx status` of the west host: its own tracker is up, the stopped one is listed down.
    found = bcx_status(west_config, looping_replay, "--component", "tracker")
    report = json.loads(found.stdout)["components"]
    assert set(report) == {"tracker.east", "tracker.west"}, found.stderr
    assert report["tracker.west"]["state"] == "up"
    assert report["tracker.east"]["state"] == "down"
    assert bcx_status(west_config, looping_replay, "--component",
                      "tracker.west").returncode == 0

    # /api/v1.0/health lists both, each tracker's stats under its own name.
    from web import create_app

    app = create_app({"BCX_CONFIG": west_config, "TESTING": True})
    body = app.test_client().get("/api/v1.0/health").get_json()
    assert body["components"]["tracker.west"]["state"] == "up"
    assert body["components"]["tracker.east"]["state"] == "down"
    assert "tracker" not in body["components"]
    assert {"east:coinbase", "west:coinbase"} <= set(body["exchanges"])
    assert body["exchanges"]["east:coinbase"]["connected"] == 0
    assert body["exchanges"]["west:coinbase"]["connected"] == 1
