"""Time conventions at the edges: durations like ``30s``/``7d`` and user-supplied instants.

Inside BCX instants are integer epoch milliseconds; Redis scores are epoch seconds.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)?\s*$", re.IGNORECASE)

# Epoch values at or above this are taken as milliseconds (it is 2001-09-09 in ms and
# year 33658 in seconds, so no realistic instant is ambiguous).
_MS_THRESHOLD = 1e12


def parse_duration(text: str) -> float:
    """Parse ``250ms``, ``30s``, ``15m``, ``2h``, ``7d``, ``1w``, ``5y`` or bare seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    number, unit = match.groups()
    return float(number) * _UNITS[(unit or "s").lower()]


# The API's and CLI's strict grammar: a whole or decimal number and a lower-case unit. Case
# matters, so ``1M`` (a month? a minute?) is refused rather than guessed.
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)?$")
SPAN_GRAMMAR = ("a number with an optional lower-case unit: ms, s (the default), m (minutes), "
                "h, d, w or y (365 d), such as 90, 90s, 15m, 1h or 7d")


def parse_span(text: str) -> float:
    """Seconds of ``90``, ``90s``, ``15m``, ``1h``, ``7d``: :data:`SPAN_GRAMMAR`. Unlike
    :func:`parse_duration` (config files, where ``15M`` has always meant minutes) units are
    lower case; ``M`` is refused with what to write instead."""
    value = str(text).strip()
    match = _SPAN.match(value)
    if match:
        number, unit = match.groups()
        return float(number) * _UNITS[unit or "s"]
    if re.fullmatch(r"\d+(?:\.\d+)?\s*M", value):
        raise ValueError(f"{text!r} is ambiguous: write m for minutes (15m) or days for a month "
                         f"(30d)")
    raise ValueError(f"not a duration: {text!r}; expected {SPAN_GRAMMAR}")


def format_duration(seconds: float) -> str:
    """The shortest exact form ``parse_duration`` reads back
    (``90`` -> ``90s``, ``3600`` -> ``1h``)."""
    for unit in ("y", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_RELATIVE = re.compile(r"^(?:now\s*(?:([+-])\s*(\S+))?|-\s*(\S*[a-zA-Z]))$")


def parse_instant(text: str, now: int | None = None) -> int:
    """Epoch seconds, epoch milliseconds, ISO-8601 or a time relative to ``now`` (epoch ms,
    default the clock) -> epoch milliseconds.

    ISO times without an offset are taken as UTC. Relative times are ``now``, ``now-15m``,
    ``now+1h`` and ``-1h`` (= ``now-1h``; a unit is needed there, since ``-5`` is an epoch
    number), with :func:`parse_span` durations.
    """
    value = str(text).strip()
    if not value:
        raise ValueError("empty time")
    relative = _RELATIVE.match(value)
    if relative:
        sign, span, short = relative.groups()
        base = now_ms() if now is None else now
        if short is not None:
            sign, span = "-", short
        if span is None:
            return base
        offset = round(parse_span(span) * 1000)
        return base + offset if sign == "+" else base - offset
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"not a time: {text!r}")
        return int(number) if abs(number) >= _MS_THRESHOLD else int(round(number * 1000))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use epoch seconds, epoch ms, ISO-8601 or a relative "
            f"time: now, now-15m, -1h)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """Epoch ms -> ISO-8601 UTC with millisecond precision (for logs and CSV)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
