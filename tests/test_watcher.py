"""The watcher process: live evaluation, supervised threads, heartbeats and a clean SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bcx import config as configmod
from bcx.heartbeat import read_all
from bcx.redisconn import from_config
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from bcx.watcher import run
from bcx.watcher.run import HISTORY, RULES, Watcher
from tests.cluster_support import Backend
from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, redis_url: str, rule_interval: str = "100ms",
                 mode: str = "standalone") -> Path:
    path = tmp_path / "bcx.conf"
    path.write_text(f"""\
[redis]
url = {redis_url}
mode = {mode}

[watcher]
rule_interval = {rule_interval}
rollup_every = 200ms
restart_backoff_max = 100ms
heartbeat_ttl = 3s
archive_dir = {tmp_path / "archive"}

[rule:btc-high]
kind = above
series = coinbase:BTC-USD
threshold = 50000
""")
    return path


# Every test here runs on the standalone server and on the cluster (see conftest `r`).
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def make_watcher(r, backend: Backend, tmp_path) -> Iterator[Callable[..., Watcher]]:
    made: list[tuple[Watcher, redis.Redis]] = []

    def make(**settings: str) -> Watcher:
        config = configmod.load(str(write_config(tmp_path, backend.url, mode=backend.mode,
                                                 **settings)), env={})
        connection = from_config(config.redis)
        made.append((Watcher(connection, config), connection))
        return made[-1][0]

    yield make
    for running, connection in made:
        running.shutdown()
        connection.close()


@pytest.fixture
def watcher(make_watcher) -> Watcher:
    return make_watcher()


def beat_time(r, component: str) -> int:
    return int(r.hget(f"bcx:heartbeat:{component}", "time") or 0)


def test_a_published_tick_is_evaluated_without_waiting_for_a_pass(r, keys, make_watcher):
    watcher = make_watcher(rule_interval="1h")  # so only the tick can cause the evaluation
    watcher.start()
    wait_for(lambda: beat_time(r, RULES), message="the rules thread's heartbeat")
    Store(r, keys, publish_ticks=True).write(
        [Tick("coinbase", "BTC-USD", now_ms(), price="50001.5")])
    entries = wait_for(lambda: r.xrange(keys.events_stream), message="a trigger event")
    event = json.loads(entries[0][1]["event"])
    assert (event["rule"], event["state"], event["value"]) == ("conf:btc-high", "firing",
                                                                50001.5)


def test_roll_ups_are_kept_up_to_date(r, keys, watcher):
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms(), price="7")])
    watcher.start()
    wait_for(lambda: r.zcard(keys.rollup("coinbase", "BTC-USD", "price", 60)),
             message="a one-minute candle")


def test_the_history_heartbeat_carries_pass_durations_and_the_rollup_instant(r, keys,
                                                                             watcher):
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms(), price="7")])
    started = now_ms()
    watcher.start()
    beat = wait_for(lambda: (found := r.hgetall(f"bcx:heartbeat:{HISTORY}"))
                    and "rollup_at_ms" in found and "trim_pass_s" in found and found,
                    message="pass figures in the history heartbeat")
    assert float(beat["rollup_pass_s"]) >= 0 and float(beat["trim_pass_s"]) >= 0
    assert started <= int(beat["rollup_at_ms"]) <= now_ms()


class Scheduler(run.BackgroundScheduler):
    """Tells when its shutdown has begun."""

    shutting_down = threading.Event()

    def shutdown(self, wait: bool = True) -> None:
        self.shutting_down.set()
        super().shutdown(wait)


def test_the_history_heartbeat_beats_during_a_long_first_pass(r, keys, watcher, monkeypatch):
    monkeypatch.setattr(run, "BackgroundScheduler", Scheduler)
    Scheduler.shutting_down.clear()
    start = now_ms() - 30 * 60_000
    Store(r, keys).write([Tick("coinbase", "BTC-USD", start + 60_000 * i, price=str(i))
                          for i in range(20)])  # one a minute: a page of 5 ends 4 candles
    release = threading.Event()
    reads: list[int] = []
    real_read = watcher.history._read

    def slow_read(*args: object) -> list:
        reads.append(1)
        if len(reads) > 1:  # the pass is stuck on its second page until released
            release.wait(timeout=30)
        return real_read(*args)

    watcher.history._read = slow_read  # type: ignore[method-assign]
    watcher.history.page = 5
    watcher.start()
    try:
        # The beat follows the first page; the read of the second may not have begun yet.
        wait_for(lambda: beat_time(r, HISTORY) and len(reads) == 2,
                 message="a history heartbeat mid-pass")
        assert not release.is_set() and len(reads) == 2
        # A stop request during that pass: the pass finishes and the thread ends.
        watcher.stop.set()
        wait_for(Scheduler.shutting_down.is_set, message="the scheduler's shutdown")
    finally:
        release.set()
    history_thread = watcher.threads[0]
    wait_for(lambda: not history_thread.is_alive(), message="the history thread to end")


def test_a_crashing_thread_is_restarted_while_the_other_keeps_beating(r, watcher):
    real_pass = watcher.history.rollup_pass
    failures = iter([True, True, True])

    def flaky(now: int) -> int:
        if next(failures, False):
            raise RuntimeError("injected failure")
        return real_pass(now)

    watcher.history.rollup_pass = flaky  # type: ignore[method-assign]
    watcher.start()
    first_rules_beat = wait_for(lambda: beat_time(r, RULES), message="rules heartbeat")
    # The thread beats through its back-offs, degraded, and is clear again after a good pass.
    wait_for(lambda: r.hget(f"bcx:heartbeat:{HISTORY}", "degraded") == "",
             message="a healthy history heartbeat after restarts")
    history_thread, rules_thread = watcher.threads
    assert history_thread.restarts == 3
    assert rules_thread.restarts == 0
    wait_for(lambda: beat_time(r, RULES) > first_rules_beat, message="rules still beating")
    assert history_thread.is_alive() and rules_thread.is_alive()


def test_shutdown_clears_both_heartbeats(r, keys, watcher):
    watcher.start()
    wait_for(lambda: beat_time(r, HISTORY) and beat_time(r, RULES), message="heartbeats")
    watcher.shutdown()
    assert read_all(r, keys) == {HISTORY: None, RULES: None}


def test_bcx_watcher_exits_0_on_sigterm(r, backend: Backend, tmp_path):
    path = write_config(tmp_path, backend.url, mode=backend.mode)
    process = subprocess.Popen([sys.executable, "-m", "bcx.cli", "watcher", "--config",
                                str(path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        wait_for(lambda: beat_time(r, HISTORY) and beat_time(r, RULES), timeout=20,
                 message="the watcher's heartbeats")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, process.stderr.read().decode()[-2000:]
        assert not r.exists("bcx:heartbeat:watcher.history", "bcx:heartbeat:watcher.rules")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
