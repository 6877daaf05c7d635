"""The whole stack of `make run` (tracker, watcher, server, gunicorn) as real processes on one
standalone Redis and on a 3-master Redis Cluster: ticks stored, roll-ups built, a rule fired
and delivered, the API answering, `bcx status` exiting 0, and after each step exactly the
keys the schema documents (arq's remaining-keys check: it catches leaked keys, wrong names and
keys that outlive their process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bcx import demo
from bcx.keys import Keys
from bcx.replay import ReplayServer
from tests.cluster_support import Backend
from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEYS = Keys("bcx")
SERIES = ("BTC-USD", "ETH-USD")
COMPONENTS = ("tracker", "watcher.history", "watcher.rules", "server", "web")


def _config(tmp_path: Path, backend: Backend, replay_url: str, web_port: int) -> Path:
    path = tmp_path / "bcx.conf"
    path.write_text(f"""\
[redis]
url = {backend.url}
mode = {backend.mode}

[tracker]
exchanges = coinbase
flush_interval = 20ms
stats_interval = 200ms
heartbeat_ttl = 5s

[exchange:coinbase]
url = {replay_url}
symbols = {" ".join(SERIES)}

[watcher]
rollups = 1s:1h
rollup_every = 200ms
late_grace = 0s
rule_interval = 100ms
heartbeat_ttl = 3s
archive_dir = {tmp_path / "archive"}

[rule:btc-high]
kind = above
series = coinbase:BTC-USD
threshold = 1
cooldown = 1h

[server]
notifiers = log
log_path = {tmp_path / "alerts.jsonl"}
heartbeat_ttl = 3s
claim_idle = 1s

[web]
bind = 127.0.0.1:{web_port}
heartbeat_ttl = 3s
workers = 1
""")
    return path


@dataclass
class Stack:
    conf: Path
    api: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def status(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bcx.cli", "status", "--config",
                               str(self.conf)], capture_output=True, text=True, timeout=60)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.api + path, timeout=10)

    def stop(self) -> dict[str, int]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes

    def output(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}"
                         for path in sorted(self.logs.glob("*.log")))


@pytest.fixture
def stack(tmp_path: Path, backend: Backend) -> Iterator[Stack]:
    session = tmp_path / "coinbase.session.jsonl"
    session.write_text("\n".join(demo.session_lines(seconds=30, per_second=20)) + "\n")
    replay = ReplayServer(session, speed=1, loop=True)
    url = replay.start()
    port = free_port()
    conf = _config(tmp_path, backend, url, port)
    env = {**os.environ, "BCX_CONF": str(conf), "BCX_LOG_LEVEL": "info",
           "PYTHONPATH": str(ROOT)}
    env.pop("BCX_REDIS_URL", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    commands = {
        "tracker": [sys.executable, "-m", "bcx.cli", "tracker", "--config", str(conf)],
        "watcher": [sys.executable, "-m", "bcx.cli", "watcher", "--config", str(conf)],
        "server": [sys.executable, "-m", "bcx.cli", "server", "--config", str(conf)],
        "web": [str(BIN / "gunicorn"), "-c", str(ROOT / "web" / "gunicorn_conf.py"),
                "web.wsgi:app"],
    }
    processes = {}
    for name, command in commands.items():
        with (logs / f"{name}.log").open("wb") as out:
            processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                               stderr=subprocess.STDOUT)
    running = Stack(conf, f"http://127.0.0.1:{port}/api/v1.0", processes, logs)
    try:
        yield running
    finally:
        running.stop()
        replay.stop()


def _series_keys(symbol: str) -> set[str]:
    keys = {KEYS.latest("coinbase", symbol), KEYS.watermark("coinbase", symbol)}
    for field in ("price", "bid", "ask"):
        keys |= {KEYS.raw("coinbase", symbol, field), KEYS.rollup("coinbase", symbol, field, 1)}
    return keys


# Always there once the stack has run; gap counts only when the replay's loop skipped an id.
RUNNING = {*(key for symbol in SERIES for key in _series_keys(symbol)), KEYS.series,
           KEYS.components, KEYS.tracker_stats("coinbase"), KEYS.events_stream, KEYS.alerts,
           KEYS.rules_state, *(KEYS.heartbeat(name) for name in COMPONENTS)}
OPTIONAL = {KEYS.gaps("coinbase")}


def test_the_whole_stack_runs_and_leaves_exactly_its_keys(stack: Stack, backend: Backend,
                                                          tmp_path: Path) -> None:
    def status_ok() -> bool:
        return stack.status().returncode == 0

    try:
        wait_for(status_ok, timeout=90, interval=0.5, message="bcx status exit 0")
        delivered = tmp_path / "alerts.jsonl"
        wait_for(lambda: delivered.exists() and delivered.read_text().strip(), timeout=30,
                 message="the rule's event delivered by the server")
        wait_for(lambda: backend.keys() >= RUNNING, timeout=30, message="every key written")
    except AssertionError:
        raise AssertionError(stack.output() + "\nstatus: " + stack.status().stdout) from None
    event = json.loads(delivered.read_text().splitlines()[0])
    assert (event["rule"], event["state"]) == ("conf:btc-high", "firing")

    assert stack.get("/health").status_code == 200
    listed = {item["series"] for item in stack.get("/series").json()["series"]}
    assert listed == {f"coinbase:{symbol}" for symbol in SERIES}
    alerts = stack.get("/alerts").json()["alerts"]
    assert alerts and alerts[0]["id"] == event["id"]
    candles = stack.get("/series/coinbase/BTC-USD/ohlc?interval=1m").json()
    assert candles["candles"]

    running = backend.keys()
    assert RUNNING <= running <= RUNNING | OPTIONAL, sorted(running ^ RUNNING)

    codes = stack.stop()
    assert codes == {name: 0 for name in codes}, stack.output()
    stopped = RUNNING - {KEYS.heartbeat(name) for name in COMPONENTS}
    left = backend.keys()
    assert stopped <= left <= stopped | OPTIONAL, sorted(left ^ stopped)
