"""The one health verdict behind ``bcx status``, ``/api/v1.0/health`` and the status page:
each expected component ``up``, ``degraded`` or ``down`` with the reason, and each series'
staleness. Its parts agree because they all call :func:`verdict`."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcx import query
from bcx.heartbeat import tracker_component, tracker_instances
from bcx.keys import split_series_id
from bcx.store import Stores
from bcx.timeutil import iso_ms

# The components a full deployment runs; they are listed even before they first beat, so a
# component that never started reads as down rather than being absent from the report. The
# tracker is the configured instance's (see expected()); others that beat are listed too.
EXPECTED = ("tracker", "watcher.history", "watcher.rules", "server", "web")
UP, DEGRADED, DOWN = "up", "degraded", "down"
# A beat is late, and its component down, after this many of its intervals, but never
# sooner than LATE_FLOOR_S: on a busy host a beat may be a second or two behind.
LATE_AFTER_BEATS = 3
LATE_FLOOR_S = 3.0
# Heartbeat fields shown as they are; the rest is the component's own ``info``.
_STANDARD = frozenset({"time", "pid", "host", "ttl_ms", "interval_ms", "age_s", "degraded",
                       "degraded_since_ms"})


class UnknownComponent(ValueError):
    """A component name that is neither expected nor has ever beaten."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        super().__init__(f"unknown component {name!r}; known: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class ComponentHealth:
    component: str
    state: str
    reason: str = ""
    age_s: float | None = None
    interval_s: float | None = None
    ttl_s: float | None = None
    pid: int | None = None
    host: str | None = None
    time_ms: int | None = None
    degraded_since_ms: int | None = None
    info: dict[str, str] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.state == UP

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "up": self.up, "reason": self.reason, "age_s": self.age_s,
                "interval_s": self.interval_s, "ttl_s": self.ttl_s, "pid": self.pid,
                "host": self.host, "time_ms": self.time_ms,
                "degraded_since_ms": self.degraded_since_ms, "info": self.info}


@dataclass(frozen=True)
class Verdict:
    components: list[ComponentHealth]
    series: list[dict[str, Any]]
    stale_after_s: float | None = None

    @property
    def healthy(self) -> bool:
        return (all(item.up for item in self.components)
                and not any(item["stale"] for item in self.series))

    @property
    def reasons(self) -> list[str]:
        """One line per thing that is not well: ``tracker: no heartbeat``."""
        return ([f"{item.component}: {item.reason}" for item in self.components if not item.up]
                + [f"{item['series']}: {item['reason']}" for item in self.series
                   if item["stale"]])

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "reasons": self.reasons,
                "stale_after_s": self.stale_after_s,
                "components": {item.component: item.as_dict() for item in self.components},
                "series": self.series}


def select(requested: Sequence[str], known: Iterable[str]) -> list[str]:
    """The component names to report: every known one when none is requested; a requested
    group name (``watcher``) stands for its members (``watcher.history``, ``watcher.rules``).
    A name that matches nothing known raises :class:`UnknownComponent`."""
    known = sorted(set(known))
    if not requested:
        return known
    chosen: list[str] = []
    for name in requested:
        members = [item for item in known if item == name or item.startswith(name + ".")]
        if not members:
            raise UnknownComponent(name, known)
        chosen.extend(item for item in members if item not in chosen)
    return chosen


def expected(tracker_instance: str = "") -> tuple[str, ...]:
    """The components a full deployment runs, with this host's configured tracker."""
    return tuple(tracker_component(tracker_instance) if name == "tracker" else name
                 for name in EXPECTED)


def verdict(stores: Stores, now_ms: int, stale_after_s: float | None,
            requested: Sequence[str] = (), since_ms: int | None = None,
            tracker_instance: str = "") -> Verdict:
    """The health of the requested components (every expected and registered one by default)
    and, when no component is singled out and ``stale_after_s`` is given, of every series.
    ``since_ms``: a component whose last beat is older reads as down. ``tracker_instance``:
    the configured ``[tracker] instance``, whose tracker is expected."""
    beats = stores.heartbeats.read_all()
    here = socket.gethostname()
    components = [judge(name, beats.get(name), here, since_ms)
                  for name in select(requested, [*expected(tracker_instance), *beats])]
    series: list[dict[str, Any]] = []
    if not requested and stale_after_s is not None:
        series = [_series_health(item, stale_after_s)
                  for item in query.overview(stores.ticks, now_ms, stale_after_s)]
    return Verdict(components, series, stale_after_s)


def judge(name: str, beat: dict[str, Any] | None, here: str,
          since_ms: int | None = None) -> ComponentHealth:
    """One component's state and reason from its heartbeat fields (None: no heartbeat)."""
    if beat is None:
        return ComponentHealth(name, DOWN, "no heartbeat")
    interval_ms, ttl_ms = _int(beat.get("interval_ms")), _int(beat.get("ttl_ms"))
    pid, time_ms = _int(beat.get("pid")), _int(beat.get("time"))
    age_s = beat.get("age_s")
    facts: dict[str, Any]
    facts = {"age_s": age_s, "pid": pid, "host": beat.get("host"), "time_ms": time_ms,
             "interval_s": None if interval_ms is None else interval_ms / 1000,
             "ttl_s": None if ttl_ms is None else ttl_ms / 1000,
             "degraded_since_ms": _int(beat.get("degraded_since_ms")),
             "info": {key: value for key, value in beat.items() if key not in _STANDARD}}
    if since_ms is not None and (time_ms is None or time_ms < since_ms):
        when = "at an unknown time" if time_ms is None else f"at {iso_ms(time_ms)}"
        return ComponentHealth(name, DOWN, f"no heartbeat since {iso_ms(since_ms)} "
                                           f"(last beat {when})", **facts)
    if pid is not None and beat.get("host") == here and _process_gone(pid):
        return ComponentHealth(name, DOWN, f"process {pid} is gone", **facts)
    if interval_ms is not None and age_s is not None:
        late_after = max(LATE_AFTER_BEATS * interval_ms / 1000, LATE_FLOOR_S)
        if age_s > late_after:
            return ComponentHealth(name, DOWN, f"last beat {_seconds(age_s)} ago, expected "
                                               f"every {_seconds(interval_ms / 1000)}", **facts)
    degraded = str(beat.get("degraded") or "").strip()
    if degraded:
        return ComponentHealth(name, DEGRADED, degraded, **facts)
    return ComponentHealth(name, UP, "", **facts)


def report(stores: Stores, now_ms: int, stale_after_s: float, exchanges: Iterable[str] = (),
           tracker_instance: str = "") -> dict[str, Any]:
    """The verdict as ``/api/v1.0/health`` answers it, with the feed statistics of each
    exchange (configured or seen) that has any, for every tracker instance listed: named
    ``exchange`` for the unnamed tracker, ``instance:exchange`` for the others."""
    found = verdict(stores, now_ms, stale_after_s, tracker_instance=tracker_instance)
    names = sorted(set(exchanges) | {split_series_id(item["series"])[0]
                                     for item in found.series})
    instances = tracker_instances(item.component for item in found.components)
    # Gaps per symbol too: ``*`` holds those revealed by frames of channels not subscribed.
    return {**found.as_dict(), "redis": "up", "archive": archive(found),
            "exchanges": stores.tracker_stats.read(names, instances),
            "gaps": {name: gaps for name in names if (gaps := stores.tracker_stats.gaps(name))}}


def archive(found: Verdict) -> dict[str, Any] | None:
    """The archive as the history thread last reported it (``bytes`` on disk, ``oldest``
    date held, ``last_pass``: the last trim pass's result), or None when it reports none."""
    for item in found.components:
        if item.component == "watcher.history" and "archive_bytes" in item.info:
            return {"bytes": _int(item.info["archive_bytes"]),
                    "oldest": item.info.get("archive_oldest") or None,
                    "last_pass": item.info.get("archive_last", "")}
    return None


def _series_health(item: dict[str, Any], stale_after_s: float) -> dict[str, Any]:
    age = item["age_s"]
    reason = ""
    if item["stale"]:
        reason = ("no tick yet" if age is None else
                  f"last tick {_seconds(age)} ago, stale after {_seconds(stale_after_s)}")
    return {"series": item["series"], "time": item["time"], "age_s": age,
            "stale": item["stale"], "reason": reason}


def _process_gone(pid: int) -> bool:
    """Whether process ``pid`` of this host has ended (a zombie, killed but not yet reaped by
    its parent, has ended too). A process of another user still exists."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] == "Z"


def _seconds(value: float) -> str:
    """``0.3 s``, ``1 s``, ``42 s``: a tenth below ten seconds, whole seconds above."""
    return f"{round(value, 1) if value < 10 else round(value):g} s"


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
