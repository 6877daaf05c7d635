"""History manager cost: a full roll-up pass, an incremental pass, memory before/after trimming.

    .venv/bin/python bench/history_bench.py [--series 10] [--seconds 86400] [--retention 1h]
                                            [--archive]

Writes ``series x seconds`` one-second ticks through the Store into a private redis-server,
then times (client CPU seconds) a first, full roll-up pass (1 m and 1 h candles), an
incremental pass after one more minute of ticks, and a trim pass to ``--retention`` (with
``--archive``, writing the trimmed ticks to CSV in a temporary directory first).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from common import private_redis, used_memory
from store_bench import make_ticks

from bcx.config import WatcherConfig
from bcx.keys import Keys
from bcx.redisconn import connect
from bcx.store import RollupStore, Store
from bcx.timeutil import parse_duration
from bcx.watcher.archive import Archive
from bcx.watcher.history import HistoryManager


def timed(action, *args):  # noqa: ANN001, ANN201 - a bench helper
    wall, cpu = time.perf_counter(), time.process_time()
    result = action(*args)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=86_400)
    parser.add_argument("--retention", default="1h", help="raw retention for the trim pass")
    parser.add_argument("--archive", action="store_true", help="archive what the trim removes")
    args = parser.parse_args()

    total = args.series * (args.seconds + 60)
    ticks = make_ticks(total, args.series)
    day, minute = ticks[:args.series * args.seconds], ticks[args.series * args.seconds:]
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="bcx-archive-") as tmp:
        client = connect(server.url)
        keys = Keys("bcx")
        store = Store(client, keys)
        for start in range(0, len(day), 5000):
            store.write(day[start:start + 5000])
        config = replace(WatcherConfig(), raw_retention=parse_duration(args.retention))
        manager = HistoryManager(store, RollupStore(client, keys), config,
                                 Archive(tmp) if args.archive else None)
        end = day[-1].ms + 1
        full, full_cpu, full_wall = timed(manager.rollup_pass, end)

        store.write(minute)
        incremental, incr_cpu, incr_wall = timed(manager.rollup_pass, minute[-1].ms + 1)

        before = used_memory(client)
        trimmed, trim_cpu, trim_wall = timed(manager.trim_pass, minute[-1].ms + 1)
        after = used_memory(client)
        left = sum(store.count("bench", f"S{s}-USD", "price") for s in range(args.series))
        client.close()

    print(f"ticks                  {len(day):,} ({args.series} series x {args.seconds:,} s) "
          f"+ {len(minute):,} (one more minute)")
    print(f"full roll-up pass      {full_cpu:.2f} s CPU ({full_wall:.2f} s wall), "
          f"{full.count:,} candles (1m + 1h)")
    print(f"incremental pass       {incr_cpu:.3f} s CPU ({incr_wall:.3f} s wall) over one new "
          f"minute, {incremental.count:,} candles rewritten")
    label = f"trim to {args.retention}"
    archived = ", archived to CSV first" if args.archive else ""
    print(f"{label:<23}{trim_cpu:.2f} s CPU ({trim_wall:.2f} s wall), {trimmed.count:,} items "
          f"removed{archived}, {left:,} raw ticks left")
    print(f"redis used_memory      {before / 2**20:,.1f} MiB before trimming -> "
          f"{after / 2**20:,.1f} MiB after")


if __name__ == "__main__":
    main()
