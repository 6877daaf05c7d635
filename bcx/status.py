"""``bcx status``: each component's health from its heartbeat, as a table or JSON, with an exit
status that service managers and monitors can use (0 all up, 1 one down or degraded, 3 Redis
unreachable).

``--wait`` is the start-up check of the init scripts and systemd units: it waits for a heartbeat
written after the check began, so a key left behind by a crashed predecessor does not count.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import click
import redis

from bcx import heartbeat
from bcx.config import Config
from bcx.keys import Keys
from bcx.redisconn import from_config
from bcx.timeutil import now_ms

log = logging.getLogger(__name__)

# The components a full deployment runs; they are listed even before they first beat, so a
# component that never started reads as down rather than being absent from the report.
EXPECTED = ("tracker", "watcher.history", "watcher.rules", "server", "web")
EXIT_OK = 0
EXIT_DOWN = 1
EXIT_UNREACHABLE = 3
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class Health:
    component: str
    up: bool
    age_s: float | None = None
    pid: str | None = None
    host: str | None = None
    ttl_s: float | None = None
    time_ms: int | None = None
    degraded: str | None = None  # alive but failing: the reason its heartbeat gives

    @property
    def healthy(self) -> bool:
        return self.up and not self.degraded


def select(requested: Sequence[str], known: Iterable[str]) -> list[str]:
    """The component names to report: every known one when none is requested; a requested
    group name (``watcher``) stands for its members (``watcher.history``, ``watcher.rules``)."""
    known = sorted(set(known))
    if not requested:
        return known
    chosen: list[str] = []
    for name in requested:
        members = [item for item in known if item == name or item.startswith(name + ".")]
        for item in members or [name]:
            if item not in chosen:
                chosen.append(item)
    return chosen


def check(connection: redis.Redis, keys: Keys, requested: Sequence[str] = ()) -> list[Health]:
    """The health of the requested components (all expected and registered ones by default)."""
    beats = heartbeat.read_all(connection, keys)
    out = []
    for name in select(requested, [*EXPECTED, *beats]):
        beat = beats.get(name)
        if beat is None:
            out.append(Health(name, up=False))
            continue
        ttl_ms = beat.get("ttl_ms")
        out.append(Health(name, up=True, age_s=beat.get("age_s"), pid=beat.get("pid"),
                          host=beat.get("host"),
                          ttl_s=int(ttl_ms) / 1000 if ttl_ms is not None else None,
                          time_ms=int(beat["time"]) if "time" in beat else None,
                          degraded=beat.get("degraded") or None))
    return out


def wait_fresh(connection: redis.Redis, keys: Keys, requested: Sequence[str], timeout: float,
               since_ms: int) -> list[Health]:
    """Poll until every requested component has beaten at or after ``since_ms``, or until
    ``timeout`` seconds have passed. A component whose only beat is older reads as down."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            healths = [fresh(health, since_ms) for health in check(connection, keys, requested)]
        except (redis.RedisError, OSError) as exc:
            # Redis may still be coming up alongside the component: keep trying until the end.
            if time.monotonic() >= deadline:
                raise
            log.debug("waiting for Redis: %s", exc)
        else:
            if all(health.up for health in healths) or time.monotonic() >= deadline:
                return healths
        time.sleep(POLL_INTERVAL)


def fresh(health: Health, since_ms: int) -> Health:
    if health.up and (health.time_ms is None or health.time_ms < since_ms):
        return Health(health.component, up=False, age_s=health.age_s, pid=health.pid,
                      host=health.host, ttl_s=health.ttl_s, time_ms=health.time_ms)
    return health


def render_table(healths: Sequence[Health]) -> str:
    reasons = any(health.up and health.degraded for health in healths)
    rows = [("COMPONENT", "STATE", "AGE", "PID", "HOST") + (("REASON",) if reasons else ())]
    for health in healths:
        age = f"{health.age_s:.1f}s" if health.age_s is not None else "-"
        degraded = health.degraded if health.up else None
        state = "DEGRADED" if degraded else "up" if health.up else "DOWN"
        rows.append((health.component, state, age, health.pid or "-", health.host or "-")
                    + ((degraded or "",) if reasons else ()))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def render_json(healths: Sequence[Health]) -> str:
    document: dict[str, Any] = {
        "healthy": all(health.healthy for health in healths),
        "components": {health.component: {key: value for key, value in asdict(health).items()
                                          if key != "component"} for health in healths},
    }
    return json.dumps(document, indent=2)


def run(cfg: Config, components: Sequence[str] = (), as_json: bool = False,
        wait: float | None = None, since_ms: int | None = None) -> int:
    """Print the health report and return the exit status. ``since_ms``: a heartbeat older
    than this reads as down; with ``wait`` it defaults to the moment the check starts."""
    connection = from_config(cfg.redis, client_name="bcx-status")
    keys = Keys(cfg.redis.prefix)
    if wait is not None and since_ms is None:
        since_ms = now_ms()
    try:
        if wait is None:
            healths = check(connection, keys, components)
            if since_ms is not None:
                healths = [fresh(health, since_ms) for health in healths]
        else:
            healths = wait_fresh(connection, keys, components, wait, since_ms=since_ms)
    except (redis.RedisError, OSError) as exc:
        click.echo(f"bcx: cannot read heartbeats from Redis: {exc}", err=True)
        return EXIT_UNREACHABLE
    finally:
        connection.close()
    click.echo(render_json(healths) if as_json else render_table(healths))
    return EXIT_OK if all(health.healthy for health in healths) else EXIT_DOWN
