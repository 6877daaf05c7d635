"""Ingest into a 3-master Redis Cluster next to one standalone server, with one tracker and then
two trackers sharding the symbols (``[tracker] instance``): ticks stored per second and the
share of stored values landing on each master.

Each tracker is its own process fed by its own looping replay of the Binance recording (10
symbols) at full speed; with two trackers each streams 5 of them. Everything runs on this
machine, so the trackers, the replays and every Redis node share its cores: read the figures
as relative, not as what separate hosts would do.

    .venv/bin/python bench/cluster_bench.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ROOT, private_redis

from bcx import config as configmod
from bcx.config import RedisConfig
from bcx.replay import ReplayServer
from bcx.tracker.run import Tracker, tracker_client
from tests.cluster_support import RedisClusterDeployment

SESSION = ROOT / "tests" / "data" / "binance_bookticker.session.jsonl"
SYMBOLS = ["BTC-AUD", "MANA-USDT", "ETH-BRL", "DENT-USDT", "ZIL-USDT", "RENBTC-ETH",
           "BTCST-USDT", "QTUM-ETH", "AXS-BNB", "NEO-USDC"]


def _shard_session(directory: Path, symbols: list[str]) -> Path:
    """The recording with only the frames of ``symbols`` (and every non-data line), so each
    tracker of a sharded pair receives just its own half."""
    natives = {symbol.replace("-", "").lower() for symbol in symbols}
    path = directory / f"binance-{'-'.join(symbols)}.session.jsonl"
    with SESSION.open() as source, path.open("w") as target:
        for line in source:
            entry = json.loads(line)
            stream = str(json.loads(entry["raw"]).get("stream", "")) if entry.get(
                "dir") == "recv" else ""
            if not stream or stream.split("@")[0] in natives:
                target.write(line)
    return path


def _tracker(conf: str, session: str, seconds: float, results: multiprocessing.Queue) -> None:
    """One tracker process with its own replay: ticks stored in ``seconds`` after warm-up."""
    logging.disable(logging.WARNING)  # refusals and reconnects are not the figure here
    config = configmod.load(conf, env={})
    replay = ReplayServer(Path(session), speed=0, loop=True)
    url = replay.start()
    config = dataclasses.replace(config, exchanges={**config.exchanges, "binance":
                                 dataclasses.replace(config.exchanges["binance"], url=url)})
    tracker = Tracker(config, tracker_client(config))
    tracker.start()
    time.sleep(1.0)  # connect, subscribe, first batches
    start_written, start = tracker.writer.written, time.perf_counter()
    time.sleep(seconds)
    written, wall = tracker.writer.written - start_written, time.perf_counter() - start
    tracker.stop()
    replay.stop()
    results.put(written / wall)


def _config(directory: Path, redis: RedisConfig, symbols: list[str], instance: str) -> str:
    path = directory / f"bcx-{instance or 'one'}.conf"
    lines = ["[redis]", f"url = {redis.url}", f"mode = {redis.mode}", "[tracker]",
             "exchanges = binance", "max_clock_skew = 30d"]
    if instance:
        lines.append(f"instance = {instance}")
    lines += ["[exchange:binance]", "url = ws://127.0.0.1:1", f"symbols = {' '.join(symbols)}"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _run(directory: Path, redis: RedisConfig, trackers: int, seconds: float) -> float:
    shards = [SYMBOLS[index::trackers] for index in range(trackers)]
    results: multiprocessing.Queue = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=_tracker, args=(
        _config(directory, redis, shard, f"t{index}" if trackers > 1 else ""),
        str(_shard_session(directory, shard)), seconds, results))
        for index, shard in enumerate(shards)]
    for process in processes:
        process.start()
    rates = [results.get(timeout=seconds + 60) for _ in processes]
    for process in processes:
        process.join(30)
    return sum(rates)


def _shares(cluster: RedisClusterDeployment) -> dict[int, int]:
    """Stored values per master port (raw sorted sets only)."""
    client = cluster.client()
    counts: Counter[int] = Counter()
    try:
        for key in client.scan_iter(match="bcx:{*}:*", count=1000, target_nodes="primaries"):
            if key.endswith((":price", ":bid", ":ask")):
                counts[client.get_node_from_key(key).port] += client.zcard(key)
    finally:
        client.close()
    return dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bcx-cluster-bench-") as directory:
        root = Path(directory)
        for trackers in (1, 2):
            with private_redis() as server:
                rate = _run(root, RedisConfig(url=server.url), trackers, args.seconds)
                rows.append(("standalone", trackers, rate, ""))
            cluster = RedisClusterDeployment(root / f"cluster-{trackers}", replicas=0)
            cluster.start()
            try:
                rate = _run(root, RedisConfig(url=cluster.url, mode="cluster"), trackers,
                            args.seconds)
                shares = _shares(cluster)
            finally:
                cluster.stop()
            total = sum(shares.values()) or 1
            rows.append(("cluster (3 masters)", trackers, rate, ", ".join(
                f"{count / total:.0%}" for _, count in sorted(shares.items()))))
    print(f"Binance recording looped at full speed, {args.seconds:g} s per run, "
          "one replay process per tracker, on this machine's cores")
    print(f"{'redis':<22}{'trackers':>9}{'ticks/s':>12}   share of values per master")
    for name, trackers, rate, shares in rows:
        print(f"{name:<22}{trackers:>9}{rate:>12,.0f}   {shares}")


if __name__ == "__main__":
    main()
