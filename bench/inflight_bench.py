"""What a SIGKILLed tracker loses: ticks received but not yet acknowledged by Redis (the batch
being written, the pending batch and the frames queued between feed and writer), sampled at
random instants while a looped recording streams over a real websocket into one tracker
(this process) writing to a private redis-server.

    .venv/bin/python bench/inflight_bench.py [--rate 0] [--seconds 10]

``--rate`` is frames per second (0: as fast as possible).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, private_redis
from ingest_bench import tracker_config

from bcx.replay import ReplayServer, load_session
from bcx.tracker.run import Tracker, tracker_client

SESSION = "binance_bookticker"


def serve_replay(speed: float, urls: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    server = ReplayServer(ROOT / "tests" / "data" / f"{SESSION}.session.jsonl", speed=speed,
                          loop=True)
    urls.put(server.start())
    stop.wait()
    server.stop()


def recorded_rate() -> float:
    body = load_session(ROOT / "tests" / "data" / f"{SESSION}.session.jsonl").body
    return len(body) / max(1e-9, body[-1].ts - body[0].ts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    speed = args.rate / recorded_rate() if args.rate else 0.0
    urls: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    replay = multiprocessing.Process(target=serve_replay, args=(speed, urls, stop))
    replay.start()
    samples: list[int] = []
    try:
        url = urls.get(timeout=30)
        with private_redis() as server, tempfile.TemporaryDirectory() as directory:
            config = tracker_config(Path(directory), server.url, SESSION, url)
            tracker = Tracker(config, tracker_client(config))
            feed, writer = tracker.stats[0], tracker.writer
            tracker.start()
            time.sleep(2.0)  # warm-up: connected and streaming
            start_ticks, start = feed.ticks, time.perf_counter()
            deadline = start + args.seconds
            while time.perf_counter() < deadline:
                samples.append(feed.ticks - writer.written - writer.dropped.total)
                time.sleep(random.uniform(0.001, 0.02))
            rate = (feed.ticks - start_ticks) / (time.perf_counter() - start)
            stop.set()
            tracker.stop()
    finally:
        stop.set()
        replay.join(10)
        if replay.is_alive():
            replay.terminate()
            replay.join()
    samples.sort()
    tc = config.tracker
    print(f"replay                 {SESSION}, looped, "
          f"{'as fast as possible' if not args.rate else f'{args.rate:,.0f} frames/s'}")
    print(f"ticks received per s   {rate:,.0f} (batch_size {tc.batch_size}, flush_interval "
          f"{tc.flush_interval * 1000:g} ms, queue bound {writer.inbox_limit} frames)")
    print(f"in flight (lost on a SIGKILL), {len(samples)} samples: "
          f"median {statistics.median(samples):,.0f} ticks, "
          f"p99 {samples[int(len(samples) * 0.99)]:,} ticks, max {samples[-1]:,} ticks")
    print(f"as time at that rate   median {statistics.median(samples) / rate * 1000:.1f} ms, "
          f"max {samples[-1] / rate * 1000:.1f} ms")


if __name__ == "__main__":
    main()
