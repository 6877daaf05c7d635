"""Tracker ingest: a recording looped to at least 1,000,000 frames, replayed at full speed over
a real websocket into one tracker (this process) writing to a private redis-server.

Prints ticks stored per second, trades and values (prices, sizes, trades) stored per second
and the bytes each stored trade takes, receipt-to-acknowledged latency (p50/p99), CPU seconds
per 100,000 ticks, the replay server's own send rate and redis-benchmark's pipelined ZADD ceiling
on the same server. Target: >= 50,000 ticks/s with p99 <= 100 ms.

    .venv/bin/python bench/ingest_bench.py [--frames 1000000] [--session binance_bookticker]
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from common import ROOT, private_redis, zadd_ceiling

from bcx import config as configmod
from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.store import Stores
from bcx.tracker.run import Tracker, tracker_client

# Normalised symbols of each recording the bench can loop.
SYMBOLS = {
    "binance_bookticker": "BTC-AUD MANA-USDT ETH-BRL DENT-USDT ZIL-USDT RENBTC-ETH BTCST-USDT "
                          "QTUM-ETH AXS-BNB NEO-USDC",
    "coinbase_ticker": "SKL-USD SKL-BTC BAND-GBP NMR-EUR BAND-BTC YFI-BTC DASH-BTC NU-GBP "
                       "CRV-EUR SKL-GBP",
}


def serve_replay(session: str, urls: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """The replay server in its own process, so its CPU is not the tracker's."""
    server = ReplayServer(ROOT / "tests" / "data" / f"{session}.session.jsonl", speed=0,
                          loop=True)
    urls.put(server.start())
    stop.wait()
    server.stop()
    urls.put((server.frames_sent, server.send_seconds))


def tracker_config(directory: Path, redis_url: str, session: str, url: str
                   ) -> configmod.Config:
    """The default tracker settings, one exchange pointed at the replay. A loop at speed 0
    stamps each round a recording's length after the last, far ahead of the clock: the
    plausibility gate is told to accept that (``max_clock_skew``), so every tick is stored."""
    exchange = session.split("_")[0]
    path = directory / "bcx.conf"
    path.write_text(f"[redis]\nurl = {redis_url}\n[tracker]\nexchanges = {exchange}\n"
                    "max_clock_skew = 30d\n"
                    f"[exchange:{exchange}]\nurl = {url}\nsymbols = {SYMBOLS[session]}\n")
    return configmod.load(str(path), env={})


def bytes_per_trade(connection: redis.Redis, config: configmod.Config) -> float:
    """MEMORY USAGE of every series' trades key over the trades it holds."""
    stores = Stores.open(connection, Keys(config.redis.prefix))
    used = count = 0
    for exchange, symbol in stores.registry.all():
        key = stores.keys.trades(exchange, symbol)
        used += connection.memory_usage(key, samples=0) or 0
        count += connection.zcard(key)
    return used / count if count else 0.0


def replay_ceiling(session: str) -> str:
    """bench/replay_bench.py's figure: the replay's rate into a client that only drains."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "replay_bench.py"),
                          "--frames", "300000", "--session", session],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(r"([\d,]+) frames/s", out)
    return match.group(1) if match else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--session", default="binance_bookticker", choices=sorted(SYMBOLS))
    args = parser.parse_args()

    urls: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    replay = multiprocessing.Process(target=serve_replay, args=(args.session, urls, stop))
    replay.start()
    try:
        url = urls.get(timeout=30)
        with private_redis() as server, tempfile.TemporaryDirectory() as directory:
            config = tracker_config(Path(directory), server.url, args.session, url)
            tracker = Tracker(config, tracker_client(config))
            feed, writer = tracker.stats[0], tracker.writer
            wall, cpu = time.perf_counter(), time.process_time()
            tracker.start()
            while feed.frames < args.frames:
                time.sleep(0.2)
            stop.set()
            while writer.written < feed.ticks or writer.written_trades < feed.trades:
                time.sleep(0.01)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            tracker.stop()
            trade_bytes = bytes_per_trade(tracker_client(config), config)
            frames_sent, send_seconds = urls.get(timeout=30)
            ceiling = zadd_ceiling(server.port)
        replay.join(10)
    finally:
        if replay.is_alive():
            replay.terminate()
            replay.join()
    drain_rate = replay_ceiling(args.session)

    rate = writer.written / wall
    p50, p99 = writer.latency.percentile(50), writer.latency.percentile(99)
    print(f"session                {args.session}, looped, speed 0 (as fast as possible)")
    print(f"frames received        {feed.frames:,} ({feed.parse_errors} unreadable)")
    print(f"ticks stored           {writer.written:,} in {wall:.2f} s "
          f"(batch_size {config.tracker.batch_size}, "
          f"flush_interval {config.tracker.flush_interval * 1000:g} ms, "
          f"publish_ticks {'on' if config.tracker.publish_ticks else 'off'})")
    print(f"ticks stored per s     {rate:,.0f}   (target >= 50,000)")
    print(f"trades stored per s    {writer.written_trades / wall:,.0f} "
          f"({writer.written_trades:,} trades)")
    print(f"values stored per s    {writer.written_values / wall:,.0f} "
          f"(prices, bids, asks, their sizes and trades: {writer.written_values:,})")
    print(f"bytes per stored trade {trade_bytes:,.1f} (MEMORY USAGE of the trades keys / "
          "trades kept)")
    print(f"latency receipt->ack   p50 {p50:.1f} ms, p99 {p99:.1f} ms   (target p99 <= 100 ms)")
    print(f"CPU per 100,000 ticks  {cpu / writer.written * 100_000:.2f} s "
          f"(tracker process, {cpu:.1f} s in all)")
    print(f"replay send rate       {frames_sent / send_seconds:,.0f} frames/s while feeding the "
          f"tracker; {drain_rate} frames/s into a client that only drains")
    if ceiling is None:
        print("redis-benchmark        not installed (Debian package redis-tools)")
    else:
        print(f"redis-benchmark ZADD   {ceiling:,.0f} requests/s (-P 64); tracker ticks/s is "
              f"{rate / ceiling:.1%} of it")


if __name__ == "__main__":
    main()
