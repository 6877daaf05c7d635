"""Only ``bcx/store/`` issues Redis commands; only ``bcx/redisconn.py`` builds clients.

Read from the source itself: every call of a Redis command method, and every construction of a
client, outside those places is named with its file and line. (``bcx/devstack.py`` pings the
private server it starts before any component runs; that probe is its whole Redis use.)
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWNERS = ("bcx/store/", "bcx/redisconn.py")
PROBES = {"bcx/devstack.py": {"ping"}}
# Names no other object in this code base has as a method.
COMMANDS = {
    "pipeline", "hgetall", "hget", "hset", "hdel", "hmget", "hincrby", "hsetnx", "zadd",
    "zrange", "zrangebyscore", "zrevrange", "zrevrangebyscore", "zrem", "zremrangebyscore",
    "zcount", "zcard", "sadd", "srem", "smembers", "sismember", "lpush", "rpush", "lrange",
    "ltrim", "llen", "xadd", "xread", "xreadgroup", "xautoclaim", "xack", "xgroup_create",
    "xgroup_delconsumer", "xinfo_groups", "xinfo_consumers", "xrevrange", "xrange", "xlen",
    "xpending", "pexpire", "pttl", "flushall", "flushdb", "dump", "restore", "pubsub",
    "scan_iter", "eval", "evalsha", "incrby", "execute_command",
}
# Names other objects have too: Redis commands only on a receiver that is plainly a client.
AMBIGUOUS = {"get", "set", "delete", "exists", "publish", "expire", "keys", "type", "watch",
             "multi", "execute", "incr", "subscribe", "ping", "wait"}
CLIENT_NAMES = {"connection", "conn", "client", "pipe", "pipeline", "redis", "r"}
CONSTRUCTORS = {"Redis", "RedisCluster", "StrictRedis", "Sentinel", "from_url"}


def _receiver(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def offences(path: Path) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    allowed = PROBES.get(relative, set())
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name, receiver = node.func.attr, _receiver(node.func.value)
        if name in allowed:
            continue
        if (name in COMMANDS or name in AMBIGUOUS and receiver in CLIENT_NAMES
                or name in CONSTRUCTORS and receiver in {"redis", "Redis", "RedisCluster"}):
            found.append(f"{relative}:{node.lineno}: {receiver}.{name}(...)")
    return found


def test_no_module_outside_the_store_issues_a_redis_command() -> None:
    files = [path for folder in ("bcx", "web") for path in sorted((ROOT / folder).rglob("*.py"))
             if not path.relative_to(ROOT).as_posix().startswith(OWNERS)]
    assert files
    assert [line for path in files for line in offences(path)] == []


def test_the_check_finds_a_command_where_it_does_not_belong(tmp_path: Path) -> None:
    sample = ROOT / "bcx" / "_ownership_sample.py"
    sample.write_text("def f(connection, pipe, d):\n"
                      "    connection.hgetall('k')\n"
                      "    pipe.set('k', 1)\n"
                      "    d.set('k', 1)\n"
                      "    d.get('k')\n")
    try:
        assert offences(sample) == ["bcx/_ownership_sample.py:2: connection.hgetall(...)",
                                    "bcx/_ownership_sample.py:3: pipe.set(...)"]
    finally:
        sample.unlink()
