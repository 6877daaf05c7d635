"""API latency under concurrent load (wrk, a separate process) against gunicorn, next to the
time of the bare Redis commands behind each query.

    .venv/bin/python bench/api_bench.py [--series 10] [--days 7] [--duration 10] [--connections 2]
        [--workers 1] [--threads 4]

Loads SERIES series x DAYS days of 1-second price/bid/ask ticks plus 30 days of 1 m and 1 h
roll-ups into a private redis-server, serves the app with gunicorn (web/gunicorn_conf.py) on
loopback and drives it with wrk. Targets: latest p99 <= 5 ms, ohlc 30 d p50 <= 25 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import requests
from common import ROOT, private_redis

from bcx.keys import Keys
from bcx.rollups import Candle, watermark_field
from bcx.store import Store
from bcx.ticks import Tick, score
from tests.support import free_port, wait_for

DAY_MS = 86_400_000
FIELDS = ("price", "bid", "ask")
ROLLUP_DAYS = 30


def load(client: redis.Redis, keys: Keys, series: int, days: int, end_ms: int) -> None:
    """Raw ticks (a random walk in cents, bid/ask around it) and 1 m / 1 h candles of it."""
    rng = random.Random(7)
    raw_start = end_ms - days * DAY_MS
    roll_start = end_ms - ROLLUP_DAYS * DAY_MS
    for s in range(series):
        symbol = f"S{s}-USD"
        cents = 5_000_000 + s * 1000
        walk: list[int] = []  # one value per second over the roll-up period
        for _ in range((end_ms - roll_start) // 1000):
            cents += rng.choice((-1, 0, 0, 1))
            walk.append(cents)
        offset = (raw_start - roll_start) // 1000
        for field, delta in zip(FIELDS, (0, -1, 1), strict=True):
            key = keys.raw("bench", symbol, field)
            pipe = client.pipeline(transaction=False)
            chunk: dict[str, float] = {}
            for i in range(offset, len(walk)):
                ms = roll_start + i * 1000
                chunk[f"{ms}:{(walk[i] + delta) / 100:.2f}"] = score(ms)
                if len(chunk) == 50_000:
                    pipe.zadd(key, chunk)
                    chunk = {}
            pipe.zadd(key, chunk)
            for interval in (60, 3600):
                step = interval
                candles = []
                for i in range(0, len(walk), step):
                    part = walk[i:i + step]
                    candles.append(Candle(roll_start + i * 1000, *(
                        f"{(v + delta) / 100:.2f}" for v in (part[0], max(part), min(part),
                                                              part[-1])), len(part)))
                # Like the watcher: complete up to a bucket boundary a little in the past.
                mark = (end_ms - 120_000) // (interval * 1000) * interval * 1000
                pipe.zadd(keys.rollup("bench", symbol, field, interval),
                          {c.member(): c.start_ms / 1000 for c in candles
                           if c.start_ms + interval * 1000 <= mark})
                pipe.hset(keys.watermark("bench", symbol), watermark_field(field, interval), mark)
            pipe.execute()
        last = walk[-1]
        Store(client, keys).write([Tick("bench", symbol, end_ms - 1000, f"{last / 100:.2f}",
                                        f"{(last - 1) / 100:.2f}", f"{(last + 1) / 100:.2f}")])


def bare_commands(client: redis.Redis, keys: Keys, end_ms: int) -> dict[str, Callable[[], object]]:
    """The Redis commands each endpoint issues, issued directly (same pipelining)."""
    sym, reg = "S0-USD", keys.series

    def latest() -> object:
        return client.hgetall(keys.latest("bench", sym))

    def history() -> object:
        client.sismember(reg, f"bench:{sym}")
        return client.zrevrangebyscore(keys.raw("bench", sym, "price"), score(end_ms),
                                       score(end_ms - 3_600_000), start=0, num=10_001)

    def ohlc() -> object:
        client.sismember(reg, f"bench:{sym}")
        marks = client.hgetall(keys.watermark("bench", sym))
        hour, minute = int(marks["price:3600"]), int(marks["price:60"])
        raw = keys.raw("bench", sym, "price")
        client.zrangebyscore(keys.rollup("bench", sym, "price", 3600),
                             score(end_ms - 30 * DAY_MS), score(hour - 1))
        client.zrangebyscore(keys.rollup("bench", sym, "price", 60), score(hour),
                             score(minute - 1))
        client.zcount(raw, score(minute), score(end_ms))
        return client.zrangebyscore(raw, score(minute), score(end_ms))

    def stats() -> object:
        client.sismember(reg, f"bench:{sym}")
        start = end_ms - DAY_MS
        pipe = client.pipeline(transaction=False)
        pipe.zcount(keys.raw("bench", sym, "price"), score(start), score(end_ms))
        pipe.zrange(keys.raw("bench", sym, "price"), 0, 0, withscores=True)
        pipe.execute()
        mark = int(client.hgetall(keys.watermark("bench", sym))["price:60"])
        for field in FIELDS:
            client.zrangebyscore(keys.rollup("bench", sym, field, 60), score(start),
                                 score(mark - 1))
            client.zrangebyscore(keys.raw("bench", sym, field), score(mark), score(end_ms))
        return None

    return {"latest": latest, "history 1h": history, "ohlc 30d": ohlc, "stats 24h": stats}


def median_ms(call: Callable[[], object], runs: int = 200) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def run_wrk(url: str, duration: int, connections: int) -> tuple[float, float, float]:
    """requests/s, p50 ms, p99 ms."""
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s",
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses\n{out}")
    return rate, _latency(out, "50%"), _latency(out, "99%")


def _latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s*{percentile}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per query")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; `make test` installs it)")

    end_ms = int(time.time() * 1000)
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="bcx-api-") as tmp:
        client = server.client()
        began = time.perf_counter()
        load(client, Keys("bcx"), args.series, args.days, end_ms)
        print(f"loaded {args.series} series x {args.days} d of 1 s ticks (x3 fields) and "
              f"{ROLLUP_DAYS} d of 1 m/1 h roll-ups in {time.perf_counter() - began:.0f} s, "
              f"used_memory {int(client.info('memory')['used_memory']) / 2**20:,.0f} MiB")
        port = free_port()
        conf = Path(tmp) / "bcx.conf"
        conf.write_text(f"[redis]\nurl = {server.url}\n[web]\nbind = 127.0.0.1:{port}\n"
                        f"workers = {args.workers}\nthreads = {args.threads}\n"
                        "stale_after = 1d\n")
        gunicorn = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "web/gunicorn_conf.py",
             "--access-logfile", "/dev/null", "--error-logfile", str(Path(tmp) / "err.log"),
             "web.wsgi:app"], cwd=ROOT, env=dict(os.environ, BCX_CONF=str(conf)))
        base = f"http://127.0.0.1:{port}/api/v1.0/series/bench/S0-USD"
        try:
            wait_for(lambda: requests.get(f"{base}/latest", timeout=2).ok, timeout=30,
                     message="gunicorn")
            urls = {"latest": f"{base}/latest",
                    "history 1h": f"{base}/history?start={end_ms - 3_600_000}&end={end_ms}",
                    "ohlc 30d": f"{base}/ohlc?interval=1h&start={end_ms - 30 * DAY_MS}"
                                f"&end={end_ms}",
                    "stats 24h": f"{base}/stats?start={end_ms - DAY_MS}&end={end_ms}"}
            bare = bare_commands(client, Keys("bcx"), end_ms)
            print(f"gunicorn gthread {args.workers} workers x {args.threads} threads; wrk 1 "
                  f"thread, {args.connections} connections, {args.duration} s per query")
            print(f"{'query':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'redis ms':>10}"
                  f"{'p50/redis':>11}")
            for name, url in urls.items():
                requests.get(url, timeout=10).raise_for_status()
                rate, p50, p99 = run_wrk(url, args.duration, args.connections)
                redis_ms = median_ms(bare[name])
                print(f"{name:<12}{rate:>9,.0f}{p50:>9.2f}{p99:>9.2f}{redis_ms:>10.3f}"
                      f"{p50 / redis_ms:>11.1f}")
            print("targets: latest p99 <= 5 ms; ohlc 30d p50 <= 25 ms "
                  "(redis ms: median of the bare commands, one client, no load)")
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
            client.close()


if __name__ == "__main__":
    main()
