"""The cold tier's cost: bytes on disk per value, archive throughput, and a one-day history
read from the Parquet dataset next to the same read from Redis.

    .venv/bin/python bench/archive_bench.py [--series 10] [--seconds 86400] [--reads 7]

Writes ``series x seconds`` one-second price ticks (a random walk in cents, as
bench/store_bench.py) into a private redis-server and measures Redis memory per value; times
one history read of the whole day of one series (``bcx.query.history``, every point, through
the reader the API uses) from Redis; then runs one trim pass that archives every value (and
compacts the closed days) into a temporary directory, reports the dataset's bytes per value and
the pass's values/s, and times the same read again, now answered by the dataset.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

from common import private_redis, used_memory
from store_bench import make_ticks

from bcx.coldtier.tiered import TieredTicks
from bcx.config import WatcherConfig
from bcx.keys import Keys
from bcx.query import history
from bcx.redisconn import connect
from bcx.store import RollupStore, Store
from bcx.watcher.archive import Archive
from bcx.watcher.history import HistoryManager

DAY_MS = 86_400_000


def p50_read(reader: TieredTicks, symbol: str, start: int, end: int, reads: int
             ) -> tuple[float, int, str]:
    times, body = [], {}
    for _ in range(reads):
        began = time.perf_counter()
        body = history(reader, "bench", symbol, "price", start, end, limit=end - start)
        times.append(time.perf_counter() - began)
    return statistics.median(times), body["count"], body["source"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=86_400)
    parser.add_argument("--reads", type=int, default=7)
    args = parser.parse_args()

    ticks = make_ticks(args.series * args.seconds, args.series)
    values = len(ticks)
    start, end = ticks[0].ms, ticks[-1].ms
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="bcx-archive-") as tmp:
        client = connect(server.url)
        keys = Keys("bcx")
        store = Store(client, keys)
        before = used_memory(client)
        for first in range(0, values, 5000):
            store.write(ticks[first:first + 5000])
        in_redis = (used_memory(client) - before) / values
        reader = TieredTicks(store, None)
        hot_p50, hot_count, hot_source = p50_read(reader, "S0-USD", start, end, args.reads)

        config = replace(WatcherConfig(), raw_retention=60.0)
        manager = HistoryManager(store, RollupStore(client, keys), config, Archive(tmp))
        now = (end // DAY_MS + 1) * DAY_MS + 61_000  # every day closed: compacted in the pass
        began = time.perf_counter()
        report = manager.trim_pass(now)
        elapsed = time.perf_counter() - began
        size, oldest = Archive(tmp).usage()
        cold_p50, cold_count, cold_source = p50_read(TieredTicks(store, tmp), "S0-USD", start,
                                                     end, args.reads)
        assert not report.failures and report.count == values, report
        assert cold_count == hot_count == args.seconds

    print(f"{args.series} series x {args.seconds} s of 1 s ticks = {values:,} values")
    print(f"Redis:   {in_redis:7.1f} B/value (used_memory)")
    print(f"dataset: {size / values:7.2f} B/value on disk ({size:,} B, oldest day {oldest}, "
          f"closed days compacted)")
    print(f"archive: {values / elapsed:,.0f} values/s (one trim pass: read, write, fsync, "
          f"ZREM, compact; {elapsed:.1f} s)")
    print(f"history of one day of one series ({hot_count:,} points), p50 of {args.reads}: "
          f"Redis {hot_p50 * 1000:.0f} ms ({hot_source}), dataset {cold_p50 * 1000:.0f} ms "
          f"({cold_source})")


if __name__ == "__main__":
    main()
