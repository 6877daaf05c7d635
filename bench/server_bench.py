"""Alert server throughput: how fast a backlog of trigger events drains through the notifiers.

    .venv/bin/python bench/server_bench.py [--events 2000]

Publishes ``--events`` events into a private redis-server, then times one in-process consumer
delivering the backlog through (a) the log notifier alone and (b) log plus a webhook on a
loopback HTTP receiver, each until every event is acknowledged.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
from common import private_redis

from bcx.config import ServerConfig
from bcx.keys import Keys
from bcx.server.consumer import Consumer
from bcx.server.notifiers import LogNotifier, Notifier, WebhookNotifier
from tests.server_support import WebhookReceiver, pending_count, publish_events


def drain(connect: Callable[[], redis.Redis], keys: Keys, notifiers: list[Notifier],
          events: int, group: str) -> float:
    """Seconds for one consumer to deliver and acknowledge ``events`` events."""
    client = connect()
    publish_events(client, keys, events)
    stop = threading.Event()
    consumer = Consumer(client, keys, ServerConfig(group=group), notifiers, stop,
                        name="bench", block_ms=50)
    started = time.perf_counter()
    thread = threading.Thread(target=consumer.run)
    thread.start()
    while consumer.stats["handled"] < events:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    assert pending_count(client, keys, group) == 0
    client.delete(keys.events_stream, keys.alerts)
    client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    keys = Keys("bench")
    with private_redis() as redis_server, tempfile.TemporaryDirectory() as directory:
        log_path = str(Path(directory) / "alerts.jsonl")
        receiver = WebhookReceiver().start()
        try:
            cases = {
                "log": [LogNotifier(log_path)],
                "log+webhook": [LogNotifier(log_path),
                                WebhookNotifier(receiver.url, 5.0, 0, 0.0)],
            }
            for name, notifiers in cases.items():
                elapsed = drain(redis_server.client, keys, notifiers, args.events, f"g-{name}")
                print(f"{name:12s} {args.events} events in {elapsed:6.2f}s = "
                      f"{args.events / elapsed:8.0f} events/s")
        finally:
            receiver.stop()


if __name__ == "__main__":
    main()
