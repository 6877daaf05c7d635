"""Live streams at scale: gunicorn (web/gunicorn_conf.py, gevent workers) holding 100, 1,000
and 2,000 open /api/v1.0/stream clients on loopback, against a private redis-server.

    .venv/bin/python bench/sse_bench.py [--streams 100,1000,2000] [--workers 2]
                                        [--requests 1000] [--rounds 5] [--rate 10]

For each count it opens that many streams (raw sockets read by one selector in this process;
``[web] max_streams`` is set to the count, per worker, so any spread over the workers fits),
then

1. times ``--requests`` sequential GETs of ``/series/coinbase/BTC-USD/latest`` on one
   keep-alive connection while a tick batch is published ``--rate`` times a second to every
   stream, and prints p50 and p99 (target: p99 <= 50 ms at 1,000 streams);
2. ``--rounds`` times publishes one tick and prints the delay from PUBLISH to the moment the
   LAST client has read it (p50 and max over the rounds). It is measured by this one Python
   process reading every socket, so it is an upper bound of what the server needs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import private_redis

from bcx.keys import Keys
from bcx.redisconn import connect
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from tests.sse_support import close_all, gunicorn, open_streams, wait_until_all

LATEST = "/api/v1.0/series/coinbase/BTC-USD/latest"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latest_latency(url: str, count: int) -> list[float]:
    session = requests.Session()
    session.get(url + LATEST, timeout=10).raise_for_status()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        response = session.get(url + LATEST, timeout=10)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    session.close()
    return times


def publish_until(store: Store, rate: float, stop: threading.Event) -> None:
    while not stop.wait(1 / rate):
        store.write([Tick("coinbase", "ETH-USD", now_ms(), "3000")])


def run(url: str, store: Store, count: int, args: argparse.Namespace) -> None:
    opened = time.monotonic()
    streams = open_streams(url, count)
    print(f"\n{count} streams open ({time.monotonic() - opened:.1f} s to open)")
    try:
        stop = threading.Event()
        feeder = threading.Thread(target=publish_until, args=(store, args.rate, stop))
        feeder.start()
        try:
            times = latest_latency(url, args.requests)
        finally:
            stop.set()
            feeder.join()
        print(f"  /latest ({args.requests} sequential, {args.rate:g} tick batches/s to every "
              f"stream): p50 {percentile(times, 50):.2f} ms, p99 {percentile(times, 99):.2f} ms,"
              f" max {max(times):.2f} ms")
        delays = []
        for _ in range(args.rounds):
            ms = now_ms()
            sent = time.monotonic()
            store.write([Tick("coinbase", "BTC-USD", ms, "65001.5")])
            arrived = wait_until_all(streams, f'"time":{ms},"price":65001.5'.encode(), 60)
            delays.append((max(arrived.values()) - sent) * 1000)
            time.sleep(0.2)
        print(f"  fan-out, PUBLISH to the last of {count} clients ({args.rounds} rounds): "
              f"p50 {statistics.median(delays):.1f} ms, max {max(delays):.1f} ms")
    finally:
        close_all(streams)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="100,1000,2000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=10.0)
    args = parser.parse_args()
    counts = [int(part) for part in args.streams.split(",")]
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="bcx-sse-") as tmp:
        client = connect(server.url)
        keys = Keys("bcx")
        store = Store(client, keys, publish_ticks=True)
        store.write([Tick("coinbase", "BTC-USD", now_ms(), "65000", "64999", "65001")])
        for count in counts:
            directory = Path(tmp) / str(count)
            directory.mkdir()
            with gunicorn(directory, server.url, workers=args.workers,
                          max_streams=str(count)) as url:
                print(f"gunicorn: {args.workers} gevent workers, max_streams {count} each")
                run(url, store, count, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
