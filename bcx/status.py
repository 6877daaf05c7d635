"""``bcx status``: the health verdict of :mod:`bcx.health` as a table or JSON, with an exit
status that service managers and monitors can use (0 all up, 1 any component down or
degraded or any series stale, 2 an unknown component name, 3 Redis unreachable).

``--wait`` is the start-up check of the init scripts and systemd units: it waits for a heartbeat
written after the check began, so a key left behind by a crashed predecessor does not count.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import click
import redis

from bcx import health
from bcx.config import Config
from bcx.keys import Keys
from bcx.redisconn import from_config
from bcx.store import Stores
from bcx.timeutil import now_ms

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_DOWN = 1
EXIT_UNKNOWN = 2
EXIT_UNREACHABLE = 3
POLL_INTERVAL = 0.2


def wait_healthy(stores: Stores, requested: Sequence[str], stale_after_s: float,
                 timeout: float, since_ms: int, tracker_instance: str = "") -> health.Verdict:
    """Poll until the verdict is healthy with every requested component beaten at or after
    ``since_ms``, or until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = health.verdict(stores, now_ms(), stale_after_s, requested,
                                   since_ms=since_ms, tracker_instance=tracker_instance)
        except (redis.RedisError, OSError) as exc:
            # Redis may still be coming up alongside the component: keep trying until the end.
            if time.monotonic() >= deadline:
                raise
            log.debug("waiting for Redis: %s", exc)
        else:
            if found.healthy or time.monotonic() >= deadline:
                return found
        time.sleep(POLL_INTERVAL)


def render_table(found: health.Verdict) -> str:
    rows = [("COMPONENT", "STATE", "AGE", "PID", "HOST", "REASON")]
    for item in found.components:
        age = f"{item.age_s:.1f}s" if item.age_s is not None else "-"
        rows.append((item.component, item.state if item.up else item.state.upper(), age,
                     str(item.pid or "-"), item.host or "-", item.reason))
    lines = _columns(rows)
    stored = health.archive(found)
    if stored is not None:
        lines += ["", f"ARCHIVE  {(stored['bytes'] or 0) / 1e6:.1f} MB on disk, oldest "
                      f"{stored['oldest'] or '-'}, last pass: {stored['last_pass'] or '-'}"]
    stale = [item for item in found.series if item["stale"]]
    if stale:
        lines += ["", *_columns([("STALE SERIES", "REASON"),
                                 *((item["series"], item["reason"]) for item in stale)])]
    return "\n".join(lines)


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            .rstrip() for row in rows]


def run(cfg: Config, components: Sequence[str] = (), as_json: bool = False,
        wait: float | None = None, since_ms: int | None = None) -> int:
    """Print the health report and return the exit status. ``since_ms``: a heartbeat older
    than this reads as down; with ``wait`` it defaults to the moment the check starts."""
    connection = from_config(cfg.redis, client_name="bcx-status")
    stores = Stores.open(connection, Keys(cfg.redis.prefix))
    instance = cfg.tracker.instance
    stale_after = cfg.web.stale_after
    if wait is not None and since_ms is None:
        since_ms = now_ms()
    try:
        if wait is None:
            found = health.verdict(stores, now_ms(), stale_after, components,
                                   since_ms=since_ms, tracker_instance=instance)
        else:
            assert since_ms is not None  # set above when waiting
            found = wait_healthy(stores, components, stale_after, wait, since_ms, instance)
    except health.UnknownComponent as exc:
        click.echo(f"bcx: --component: {exc}", err=True)
        return EXIT_UNKNOWN
    except (redis.RedisError, OSError) as exc:
        click.echo(f"bcx: cannot read heartbeats from Redis: {exc}", err=True)
        return EXIT_UNREACHABLE
    finally:
        connection.close()
    click.echo(json.dumps(found.as_dict(), indent=2) if as_json else render_table(found))
    return EXIT_OK if found.healthy else EXIT_DOWN
