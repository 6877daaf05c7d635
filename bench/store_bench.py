"""Store write throughput and memory per tick, next to redis-benchmark's ZADD ceiling.

    .venv/bin/python bench/store_bench.py [--ticks 1000000] [--series 10] [--batch 1000]
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal

from common import private_redis, used_memory, zadd_ceiling

from bcx.keys import Keys
from bcx.redisconn import connect
from bcx.store import Store
from bcx.ticks import Tick

T0 = 1_700_000_000_000


def make_ticks(count: int, series: int, seed: int = 7) -> list[Tick]:
    """One-second ticks per series, a random walk in cents, so prices recur as in markets."""
    rng = random.Random(seed)
    prices = [Decimal("50000.00") + i for i in range(series)]
    ticks = []
    for i in range(count):
        s = i % series
        prices[s] += Decimal(rng.choice((-1, 0, 0, 1))) / 100
        ticks.append(Tick("bench", f"S{s}-USD", T0 + (i // series) * 1000, price=str(prices[s])))
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    ticks = make_ticks(args.ticks, args.series)
    distinct = len({(t.symbol, t.price) for t in ticks})
    with private_redis() as server:
        client = connect(server.url)
        store = Store(client, Keys("bcx"))
        before = used_memory(client)
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(ticks), args.batch):
            store.write(ticks[start:start + args.batch])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = used_memory(client)
        stored = sum(store.count("bench", f"S{s}-USD", "price") for s in range(args.series))
        ceiling = zadd_ceiling(server.port)
        client.close()

    rate = args.ticks / wall
    print(f"ticks written          {args.ticks:,} over {args.series} series, "
          f"batches of {args.batch}")
    print(f"ticks stored           {stored:,} ({stored / args.ticks:.2%}; the seed's "
          f"ZADD <ts> <price> would keep {distinct:,} = {distinct / args.ticks:.2%})")
    print(f"ticks/s                {rate:,.0f} (wall {wall:.2f} s, client CPU {cpu:.2f} s)")
    print(f"bytes/tick             {(after - before) / stored:.1f} "
          f"(used_memory {before:,} -> {after:,})")
    if ceiling is None:
        print("ZADD ceiling           redis-benchmark not installed")
    else:
        print(f"ZADD ceiling           {ceiling:,.0f} req/s (redis-benchmark -P 64, one member "
              "per ZADD)")
        print(f"ratio to ceiling       {rate / ceiling:.2f}")


if __name__ == "__main__":
    main()
