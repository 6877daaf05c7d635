"""Cold-tier faults against a real `bcx watcher`: SIGKILLed during archive passes and
compaction, every value ends in Redis or in the dataset exactly once; the archive's size,
oldest date and last pass show in the health report and `bcx status`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from bcx import health
from bcx.keys import Keys
from bcx.store import Store, Stores
from bcx.ticks import Tick, before, member
from bcx.timeutil import now_ms
from bcx.watcher.history import RAW_FIELDS
from tests.archive_support import dataset_rows
from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent
DAY = 86_400_000
NOW = now_ms()
# Six hours of ticks across a midnight two days ago: two closed days to compact.
START = (NOW - 2 * DAY) // DAY * DAY - 3 * 3_600_000
CUTOFF = NOW - 600_000


def old_ticks() -> list[Tick]:
    return [Tick("binance", symbol, START + i * 2_000, price=f"{100 + i % 50}.5",
                 bid=f"{99 + i % 40}.25", ask=f"{101 + i % 30}.75")
            for symbol in ("BTC-USDT", "ETH-USDT") for i in range(0, 6 * 1800, 3)]


def write_config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "bcx.conf"
    path.write_text(f"""\
[redis]
url = {redis_url}

[watcher]
raw_retention = 10m
rollup_every = 100ms
trim_every = 1s
heartbeat_ttl = 3s
restart_backoff_max = 500ms
archive_dir = {tmp_path / "archive"}
""")
    return path


def watcher(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bcx.cli", "watcher", "--config", str(path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def files(root: Path) -> list[Path]:
    """Every file of the dataset, a temporary one left by a kill included."""
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_watcher_killed_during_archive_passes_leaves_every_value_once(r: redis.Redis,
                                                                       keys: Keys,
                                                                       redis_url: str,
                                                                       tmp_path: Path):
    ticks = old_ticks()
    store = Store(r, keys)
    store.write(ticks)
    path = write_config(tmp_path, redis_url)
    archive = tmp_path / "archive"
    seen = 0
    for _ in range(3):  # each kill lands later in the work: after one more file appeared
        process = watcher(path)
        try:
            wait_for(lambda seen=seen: len(files(archive)) > seen, timeout=30, interval=0.005,
                     message="a new archive file")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        seen = len(files(archive))
    process = watcher(path)
    try:
        def done() -> bool:
            left = sum(r.zcount(keys.raw("binance", s, f), "-inf", before(CUTOFF))
                       for s in ("BTC-USDT", "ETH-USDT") for f in RAW_FIELDS)
            return left == 0 and all(p.name == "day.parquet" for p in files(archive))

        wait_for(done, timeout=60, message="everything old archived and compacted")
        found = wait_for(lambda: health.archive(health.verdict(
            Stores.open(r, keys), now_ms(), None)), message="the archive in the health report")
        assert found["bytes"] == sum(os.path.getsize(p) for p in files(archive))
        assert found["oldest"] == min(p.parent.name[5:] for p in files(archive))
        assert found["last_pass"].startswith("ok: ")
        status = subprocess.run([sys.executable, "-m", "bcx.cli", "status", "--config",
                                 str(path)], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
        assert (f"ARCHIVE  {found['bytes'] / 1e6:.1f} MB on disk, oldest {found['oldest']}, "
                f"last pass: {found['last_pass']}") in status.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    rows = dataset_rows(archive)
    hot = [(s, f, m) for s in ("BTC-USDT", "ETH-USDT") for f in RAW_FIELDS
           for m in r.zrange(keys.raw("binance", s, f), 0, -1)]
    cold = [(symbol, field, member(ms, value)) for _, symbol, _, ms, field, value in rows]
    expected = [(t.symbol, f, member(t.ms, v)) for t in ticks for f, v in t.values()]
    assert sorted(hot + cold) == sorted(expected)
