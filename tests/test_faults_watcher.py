"""Watcher faults: one series' bad data or failing archive must not stop retention for the
others, nothing is trimmed unarchived, and a thread whose passes keep failing reads as degraded
in its heartbeat and in `bcx status` until a pass succeeds again."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bcx import config as configmod
from bcx.config import WatcherConfig
from bcx.keys import Keys
from bcx.redisconn import connect
from bcx.store import RollupStore, Store
from bcx.ticks import Tick, before, member, score
from bcx.timeutil import now_ms
from bcx.watcher.archive import Archive, readable
from bcx.watcher.history import HistoryManager
from bcx.watcher.run import HISTORY, RULES, Watcher
from tests.archive_support import dataset_rows, invalid_rows
from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent
NOW = now_ms()
OLD = NOW - 2 * 3_600_000  # past the 10-minute retention the watchers below keep
CUTOFF = NOW - 600_000
NO_TIME = -10**15  # a trade time of year -29719: no date can hold it
LAST_PLACEABLE = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
FIRST_PLACEABLE = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z


def write_config(tmp_path: Path, redis_url: str, archive_dir: Path) -> Path:
    path = tmp_path / "bcx.conf"
    path.write_text(f"""\
[redis]
url = {redis_url}

[watcher]
raw_retention = 10m
rollup_every = 200ms
trim_every = 1s
rule_interval = 100ms
restart_backoff_max = 500ms
heartbeat_ttl = 3s
archive = yes
archive_dir = {archive_dir}
""")
    return path


@pytest.fixture
def start_watcher(redis_url: str, tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """``start_watcher(archive_dir)``: a real `bcx watcher` process, SIGTERMed at teardown."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(archive_dir: Path) -> None:
        path = write_config(tmp_path, redis_url, archive_dir)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "bcx.cli", "watcher", "--config", str(path)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bcx_status(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bcx.cli", "status", "--config",
                           str(tmp_path / "bcx.conf"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def heartbeat(r: redis.Redis, component: str) -> dict[str, str]:
    return r.hgetall(f"bcx:heartbeat:{component}")


def old_left(r: redis.Redis, keys: Keys, exchange: str, symbol: str) -> int:
    return r.zcount(keys.raw(exchange, symbol, "price"), "-inf", before(CUTOFF))


def archived(root: Path) -> set[tuple[str, str, int, str]]:
    """(exchange, symbol, ms, value) of every row of the dataset (each row's date partition
    checked against its time)."""
    return {(exchange, symbol, ms, value)
            for exchange, symbol, _day, ms, _field, value in dataset_rows(root)}


def old_ticks(exchange: str, symbol: str) -> list[Tick]:
    return [Tick(exchange, symbol, OLD + i * 1000, price=f"{100 + i}.5") for i in range(3)]


def as_rows(ticks: list[Tick]) -> set[tuple[str, str, int, str]]:
    return {(t.exchange, t.symbol, t.ms, t.price or "") for t in ticks}


# ------------------------------------------------------------------------ a time no date holds

def test_a_trade_with_no_valid_time_stops_no_series_from_being_trimmed(
        r, keys, store, tmp_path, start_watcher):
    bad = old_ticks("binance", "BTC-USDT")
    later = old_ticks("binance", "ETH-USDT") + old_ticks("kraken", "XBT-USD")  # sorted after
    recent = Tick("binance", "BTC-USDT", NOW, price="99")
    store.write([Tick("binance", "BTC-USDT", NO_TIME, price="1"), *bad, recent, *later])
    archive = tmp_path / "archive"
    start_watcher(archive)

    for exchange, symbol in (("binance", "ETH-USDT"), ("kraken", "XBT-USD"),
                             ("binance", "BTC-USDT")):
        wait_for(lambda e=exchange, s=symbol: old_left(r, keys, e, s) == 0, timeout=20,
                 message=f"{exchange}:{symbol} trimmed to retention")
    assert archived(archive) == as_rows(bad + later)
    assert invalid_rows(archive, "binance", "BTC-USDT") == [("price", f"{NO_TIME}:1")]
    assert store.range("binance", "BTC-USDT", "price") == [(NOW, "99")]
    beat = wait_for(lambda: heartbeat(r, HISTORY), message="the history heartbeat")
    assert beat["degraded"] == "" and "degraded_since_ms" not in beat


def put(r: redis.Redis, keys: Keys, text: str, ms: int) -> None:
    """A raw member written as it stands, scored at ``ms`` (as no adapter would write it)."""
    r.zadd(keys.raw("kraken", "XBT-USD", "price"), {text: score(ms)})
    r.sadd(keys.series, "kraken:XBT-USD")


def test_members_outside_the_calendar_are_archived_as_invalid_and_trimmed(r, keys, store,
                                                                         tmp_path):
    for text in (f"{LAST_PLACEABLE}:1", f"{LAST_PLACEABLE + 1}:2", f"{FIRST_PLACEABLE}:3",
                 f"{FIRST_PLACEABLE - 1}:4", "garbage", "12ab:5", member(OLD, "6")):
        put(r, keys, text, OLD)
    put(r, keys, member(NOW, "7"), NOW)
    config = WatcherConfig(raw_retention=600.0)
    report = HistoryManager(Store(r, keys), RollupStore(r, keys), config,
                            archive=Archive(tmp_path)).trim_pass(NOW)

    assert (report.failures, report.invalid, report.count) == ([], 4, 7)
    assert archived(tmp_path) == {("kraken", "XBT-USD", ms, value) for ms, value in (
        (LAST_PLACEABLE, "1"), (FIRST_PLACEABLE, "3"), (OLD, "6"))}
    assert invalid_rows(tmp_path, "kraken", "XBT-USD") == [
        ("price", f"{FIRST_PLACEABLE - 1}:4"), ("price", "12ab:5"),
        ("price", f"{LAST_PLACEABLE + 1}:2"), ("price", "garbage")]
    assert r.zrange(keys.raw("kraken", "XBT-USD", "price"), 0, -1) == [member(NOW, "7")]


def test_readable_places_exactly_the_times_a_partition_can_name():
    points, invalid = readable([f"{LAST_PLACEABLE}:a", f"{LAST_PLACEABLE + 1}:b",
                                f"{FIRST_PLACEABLE}:c", f"{FIRST_PLACEABLE - 1}:d", "x:e"])
    assert points == [(LAST_PLACEABLE, "a"), (FIRST_PLACEABLE, "c")]
    assert invalid == [f"{LAST_PLACEABLE + 1}:b", f"{FIRST_PLACEABLE - 1}:d", "x:e"]


# ------------------------------------------------------------------------ a failing archive

def test_a_series_whose_archive_fails_keeps_its_data_while_the_others_are_trimmed(
        r, keys, store, tmp_path, start_watcher):
    archive = tmp_path / "archive"
    (archive / "exchange=binance").mkdir(parents=True)
    (archive / "exchange=binance" / "symbol=AAA-USDT").write_text(
        "a file where a directory should be")
    failing = old_ticks("binance", "AAA-USDT")
    others = old_ticks("binance", "BTC-USDT") + old_ticks("kraken", "XBT-USD")
    store.write(failing + others)
    start_watcher(archive)

    beat = wait_for(lambda: (found := heartbeat(r, HISTORY)).get("degraded") and found,
                    timeout=20, message="a degraded history heartbeat")
    assert beat["degraded"].startswith("trim: 1 of 3 series failed: binance:AAA-USDT (archive: ")
    assert "Not a directory" in beat["degraded"]
    assert beat["series_failures"] == "1"
    for exchange, symbol in (("binance", "BTC-USDT"), ("kraken", "XBT-USD")):
        wait_for(lambda e=exchange, s=symbol: old_left(r, keys, e, s) == 0, timeout=20,
                 message=f"{exchange}:{symbol} trimmed to retention")
    assert archived(archive) == as_rows(others)
    assert old_left(r, keys, "binance", "AAA-USDT") == len(failing)


def test_an_unwritable_archive_keeps_the_data_and_degrades_until_it_is_fixed(
        r, keys, store, tmp_path, start_watcher):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file: no directory can be made under it (even as root)")
    archive = blocker / "archive"
    ticks = old_ticks("binance", "BTC-USDT") + old_ticks("kraken", "XBT-USD")
    store.write(ticks)
    start_watcher(archive)

    first = wait_for(lambda: (found := heartbeat(r, HISTORY)).get("degraded") and found,
                     timeout=20, message="a degraded history heartbeat")
    assert first["degraded"].startswith("trim: 2 of 2 series failed: binance:BTC-USDT "
                                        f"(archive: [Errno 20] Not a directory: '{blocker}")
    since = int(first["degraded_since_ms"])
    assert NOW <= since <= now_ms()
    # Alive but failing: it keeps beating, still degraded since the first failed pass.
    later = wait_for(lambda: (found := heartbeat(r, HISTORY))["time"] > first["time"] and found,
                     message="a later history beat")
    assert later["degraded"] and int(later["degraded_since_ms"]) == since
    assert old_left(r, keys, "binance", "BTC-USDT") == old_left(r, keys, "kraken", "XBT-USD") == 3

    result = bcx_status(tmp_path, "--component", "watcher")
    assert result.returncode == 1, result.stdout + result.stderr
    [row] = [line for line in result.stdout.splitlines() if line.startswith(HISTORY)]
    assert "DEGRADED" in row and "Not a directory" in row

    blocker.unlink()
    wait_for(lambda: heartbeat(r, HISTORY).get("degraded") == "", timeout=20,
             message="the history heartbeat healthy again")
    assert "degraded_since_ms" not in heartbeat(r, HISTORY)
    assert old_left(r, keys, "binance", "BTC-USDT") == old_left(r, keys, "kraken", "XBT-USD") == 0
    assert archived(archive) == as_rows(ticks)
    result = bcx_status(tmp_path, "--component", "watcher")
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------ crash loops

@pytest.fixture
def watcher(r, redis_url, tmp_path) -> Iterator[Watcher]:
    path = write_config(tmp_path, redis_url, tmp_path / "archive")
    text = path.read_text().replace("restart_backoff_max = 500ms", "restart_backoff_max = 4s")
    path.write_text(text.replace("heartbeat_ttl = 3s", "heartbeat_ttl = 1s"))
    connection = connect(redis_url)
    made = Watcher(connection, configmod.load(str(path), env={}))
    yield made
    made.shutdown()
    connection.close()


def test_a_rules_thread_that_keeps_crashing_beats_degraded_until_a_pass_succeeds(r, watcher):
    broken = threading.Event()
    broken.set()
    real_periodic = watcher.engine.periodic

    def periodic(now: int) -> int:
        if broken.is_set():
            raise RuntimeError("injected evaluation failure")
        return real_periodic(now)

    watcher.engine.periodic = periodic  # type: ignore[method-assign]
    watcher.start()
    rules_thread = watcher.threads[1]
    # Back-offs of up to 4 s against a 1 s heartbeat TTL: only beats during the back-off keep
    # the key, and it never beat before its first crash.
    wait_for(lambda: rules_thread.restarts >= 3, timeout=20, message="three restarts")
    beat = heartbeat(r, RULES)
    assert beat["degraded"] == "restarting after a crash: injected evaluation failure"
    since = int(beat["degraded_since_ms"])
    later = wait_for(lambda: (found := heartbeat(r, RULES))["time"] > beat["time"] and found,
                     message="a beat during the back-off")
    assert int(later["degraded_since_ms"]) == since

    broken.clear()
    wait_for(lambda: heartbeat(r, RULES).get("degraded") == "", timeout=20,
             message="the rules heartbeat healthy after a good pass")
    assert "degraded_since_ms" not in heartbeat(r, RULES)


def test_a_history_pass_that_raises_reads_as_degraded_while_restarting(r, watcher):
    def rollup_pass(now: int) -> int:
        raise RuntimeError("injected roll-up failure")

    watcher.history.rollup_pass = rollup_pass  # type: ignore[method-assign]
    watcher.start()
    beat = wait_for(lambda: (found := heartbeat(r, HISTORY)).get("degraded") and found,
                    message="a degraded history heartbeat")
    # The trim pass between restarts succeeds; the failing roll-up keeps the thread degraded.
    assert beat["degraded"].startswith("rollup: injected roll-up failure")
    history_thread = watcher.threads[0]
    wait_for(lambda: history_thread.restarts >= 3, timeout=20, message="three restarts")
    later = heartbeat(r, HISTORY)
    assert later["degraded"].startswith("rollup: injected roll-up failure")
    assert later["degraded_since_ms"] == beat["degraded_since_ms"]
