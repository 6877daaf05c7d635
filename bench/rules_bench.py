"""Rule evaluation at scale: the watcher's rules thread with 1,000 rules over 10 series.

    .venv/bin/python bench/rules_bench.py [--rules 1000] [--series 10] [--batches 10]
                                          [--seconds 20] [--profile]

Stores ``--rules`` API rules (every kind but feed_down, spread over ``--series`` Coinbase
series, none of them firing) in a private redis-server, then

1. times (client CPU) ``periodic()`` passes of an engine on its own;
2. runs the rules thread (``bcx.watcher.rules.watch``, ``rule_interval`` 1 s) for ``--seconds``
   while a feeder writes ``--batches`` tick batches a second (one tick per series each) through
   the Store, and prints the thread's CPU %;
3. meanwhile stores five more rules, one at a time, as the API does (HSET and a change notice),
   each holding on the next tick, and prints the delay from the notice to its first event.

``--profile`` prints cProfile's top functions of the ``periodic()`` passes and of one tick batch.
"""

from __future__ import annotations

import argparse
import configparser
import cProfile
import json
import pstats
import random
import statistics
import threading
import time
import uuid

from common import private_redis

from bcx import config as configmod
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.redisconn import connect
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from bcx.watcher.rules import RuleEngine, watch

INTERVAL_S = 1.0
# kind -> rule keys that never hold for prices near 50,000 with a bid-ask spread of 1.
NEVER = [("above", {"threshold": 1e9}), ("below", {"threshold": 1}),
         ("cross_up", {"threshold": 1e9}), ("cross_down", {"threshold": 1}),
         ("change_pct", {"threshold": 50, "window": "5m"}),
         ("spread", {"threshold": 5}), ("stale", {"threshold": 3600})]


def bench_config(redis_url: str, symbols: list[str]) -> configmod.Config:
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    parser.read_dict({"redis": {"url": redis_url},
                      "watcher": {"rule_interval": f"{INTERVAL_S}s"},
                      "exchange:coinbase": {"symbols": " ".join(symbols)}})
    return configmod.from_parser(parser, "bench", env={})


def store_rule(client, keys: Keys, document: dict) -> str:  # noqa: ANN001
    """A rule as the API stores it, written directly so that no cap applies."""
    rule_id = uuid.uuid4().hex[:12]
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.rules, rule_id, json.dumps(document))
    pipe.publish(keys.rules_changed_channel, rule_id)
    pipe.execute()
    return rule_id


class Feeder(threading.Thread):
    """Writes one tick per series, ``rate`` batches a second, as the tracker publishes them."""

    def __init__(self, store: Store, symbols: list[str], rate: float):
        super().__init__(name="feeder", daemon=True)
        self.store, self.symbols, self.rate = store, symbols, rate
        self.stop = threading.Event()
        self.rng = random.Random(7)
        self.prices = [50_000.0 + index for index in range(len(symbols))]

    def batch(self) -> list[Tick]:
        ms = now_ms()
        out = []
        for index, symbol in enumerate(self.symbols):
            self.prices[index] += self.rng.choice((-0.01, 0.0, 0.01))
            price = self.prices[index]
            out.append(Tick("coinbase", symbol, ms, f"{price:.2f}", f"{price - 0.5:.2f}",
                            f"{price + 0.5:.2f}"))
        return out

    def run(self) -> None:
        while not self.stop.wait(1 / self.rate):
            self.store.write(self.batch())


def thread_cpu(thread: threading.Thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def time_passes(engine: RuleEngine, count: int, profile: bool) -> float:
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    for _ in range(count):
        if profiler:
            profiler.enable()
        engine.periodic(now_ms())
        if profiler:
            profiler.disable()
    spent = (time.process_time() - cpu) / count
    if profiler:
        print("--- periodic() passes, top 15 by cumulative time")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    return spent


def time_batches(engine: RuleEngine, feeder: Feeder, count: int, profile: bool) -> float:
    payloads = []
    for _ in range(count):
        ticks = feeder.batch()
        feeder.store.write(ticks)
        payloads.append(json.dumps([{"series": f"coinbase:{t.symbol}", "time": t.ms,
                                     **dict(t.values())} for t in ticks]))
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    for payload in payloads:
        engine.on_ticks(payload, now_ms())
    if profiler:
        profiler.disable()
        print("--- tick batches, top 15 by cumulative time")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    return (time.process_time() - cpu) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--batches", type=float, default=10, help="tick batches per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    symbols = [f"S{index}-USD" for index in range(args.series)]
    with private_redis() as server:
        client = connect(server.url)
        keys = Keys("bcx")
        config = bench_config(server.url, symbols)
        store = Store(client, keys, publish_ticks=True)
        feeder = Feeder(store, symbols, args.batches)
        store.write(feeder.batch())
        for index in range(args.rules):
            kind, extra = NEVER[index % len(NEVER)]
            store_rule(client, keys, {"name": f"rule-{index}", "kind": kind, "cooldown": 0,
                                      "series": f"coinbase:{symbols[index % args.series]}",
                                      **extra})

        engine = RuleEngine(client, keys, config, started_ms=now_ms())
        engine.start()
        pass_cpu = time_passes(engine, 20, args.profile)
        batch_cpu = time_batches(engine, feeder, 50, args.profile)

        engine = RuleEngine(client, keys, config, started_ms=now_ms())
        stop = threading.Event()
        rules_thread = threading.Thread(
            target=watch, name="rules", daemon=True,
            args=(engine, stop, Heartbeat(client, keys, "watcher.rules", 30), INTERVAL_S))
        rules_thread.start()
        while not engine.rules:
            time.sleep(0.01)
        feeder.start()
        cpu0, wall0 = thread_cpu(rules_thread), time.perf_counter()
        delays = []
        reader = connect(server.url)
        pause = args.seconds / 6
        for index in range(5):
            time.sleep(pause)
            newest = reader.xrevrange(keys.events_stream, count=1)
            last_id = newest[0][0] if newest else "0-0"
            started = time.perf_counter()
            rule_id = store_rule(client, keys, {"name": f"new-{index}", "kind": "above",
                                                "threshold": 0,
                                                "series": f"coinbase:{symbols[index]}"})
            delays.append(first_event(reader, keys, rule_id, last_id, started))
        time.sleep(pause)
        cpu, wall = thread_cpu(rules_thread) - cpu0, time.perf_counter() - wall0
        feeder.stop.set()
        stop.set()
        rules_thread.join(10)
        feeder.join(10)
        client.close()
        reader.close()

    print(f"rules                  {args.rules:,} over {args.series} series "
          f"({', '.join(kind for kind, _ in NEVER)})")
    print(f"periodic() pass        {pass_cpu * 1000:.1f} ms CPU")
    print(f"one tick batch         {batch_cpu * 1000:.1f} ms CPU "
          f"({args.series} series, every rule of them evaluated)")
    print(f"rules thread           {cpu / wall * 100:.1f} % CPU over {wall:.0f} s at "
          f"rule_interval {INTERVAL_S:g} s with {args.batches:g} tick batches/s")
    shown = ", ".join("never" if d is None else f"{d * 1000:.0f}" for d in delays)
    found = [d for d in delays if d is not None]
    print(f"new rule -> first event {shown} ms"
          + (f" (median {statistics.median(found) * 1000:.0f} ms)" if found else ""))


def first_event(reader, keys: Keys, rule_id: str, last_id: str,  # noqa: ANN001
                started: float, timeout: float = 30.0) -> float | None:
    """Seconds from ``started`` until an event of ``rule_id`` is in the stream, or None."""
    while time.perf_counter() - started < timeout:
        found = reader.xread({keys.events_stream: last_id}, block=200)
        for _, entries in found:
            for entry_id, fields in entries:
                last_id = entry_id
                if json.loads(fields["event"])["rule"] == rule_id:
                    return time.perf_counter() - started
    return None


if __name__ == "__main__":
    main()
