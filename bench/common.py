"""What the benchmarks share: a private redis-server, Redis memory and the ZADD ceiling."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import RedisServer  # noqa: E402  (after the path set-up above)


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A redis-server on a free loopback port in a temp dir, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="bcx-bench-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def zadd_ceiling(port: int, requests: int = 1_000_000, pipeline: int = 64) -> float | None:
    """redis-benchmark's pipelined ZADD rate (requests/s) on the same server, or None when
    redis-benchmark is not installed."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(port), "-t", "zadd", "-n", str(requests),
         "-P", str(pipeline), "-r", "100000", "-q"],
        capture_output=True, text=True, check=True).stdout
    match = re.search(r"ZADD:\s*([\d.]+)\s+requests per second", out.replace("\r", "\n"))
    return float(match.group(1)) if match else None
