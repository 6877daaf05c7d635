"""Strict query-parameter parsing: every parameter is checked against what its endpoint
declares, and a bad one raises :class:`ParamError` naming it (the API answers 400)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from werkzeug.datastructures import MultiDict

from bcx.query import QueryError
from bcx.timeutil import SPAN_GRAMMAR, parse_instant, parse_span

# 0 .. 9999-12-31T23:59:59.999Z: every instant a client can mean, and none that overflows.
MAX_MS = 253_402_300_799_999
_SERIES = re.compile(r"^[a-z]{1,16}:[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$")


class ParamError(QueryError):
    """A query parameter the endpoint cannot accept."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def check_known(args: MultiDict[str, str], allowed: Iterable[str]) -> None:
    """Refuse parameters the endpoint does not define (a typo would otherwise be ignored)
    and parameters given twice."""
    allowed = tuple(allowed)
    for name in args:
        if name not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise ParamError(name, f"unknown parameter; this endpoint takes {expected}")
        if len(args.getlist(name)) > 1:
            raise ParamError(name, "given more than once")


def instant(args: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    text = args.get(name)
    if text is None:
        return default
    try:
        value = parse_instant(text)
    except (ValueError, OverflowError) as exc:
        why = str(exc) if "ambiguous" in str(exc) else (
            f"expected epoch seconds, epoch milliseconds, ISO-8601 or a relative time (now, "
            f"now-15m, -1h), got {_shown(text)}")
        raise ParamError(name, why) from None
    if not 0 <= value <= MAX_MS:
        raise ParamError(name, f"{_shown(text)} is outside 1970 to 9999")
    return value


def time_range(args: Mapping[str, str], default_start: int | None,
               default_end: int | None) -> tuple[int | None, int | None]:
    start = instant(args, "start", default_start)
    end = instant(args, "end", default_end)
    if start is not None and end is not None and start > end:
        raise ParamError("start", "must not be after end")
    return start, end


def integer(args: Mapping[str, str], name: str, default: int, minimum: int,
            maximum: int) -> int:
    text = args.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[+-]?\d{1,18}", text.strip()):
        raise ParamError(name, f"expected an integer from {minimum} to {maximum}, got "
                         f"{_shown(text)}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ParamError(name, f"expected an integer from {minimum} to {maximum}, got {value}")
    return value


def choice(args: Mapping[str, str], name: str, options: Sequence[str], default: str) -> str:
    text = args.get(name)
    if text is None:
        return default
    if text not in options:
        raise ParamError(name, f"expected one of {', '.join(options)}, got {_shown(text)}")
    return text


def interval(args: Mapping[str, str], name: str, maximum: int) -> int | None:
    """A whole number of seconds, written ``90``, ``90s``, ``15m``, ``1h`` or ``1d``
    (:data:`bcx.timeutil.SPAN_GRAMMAR`; ``1M`` is refused as ambiguous)."""
    text = args.get(name)
    if text is None:
        return None
    expected = f"a whole number of seconds from 1s to {maximum}s, such as 60, 15m, 1h or 1d"
    try:
        seconds = parse_span(text)
    except ValueError as exc:
        if "ambiguous" in str(exc):
            raise ParamError(name, str(exc)) from None
        raise ParamError(name, f"expected {expected} ({SPAN_GRAMMAR}), got "
                         f"{_shown(text)}") from None
    if seconds != int(seconds) or not 1 <= seconds <= maximum:
        raise ParamError(name, f"expected {expected}, got {_shown(text)}")
    return int(seconds)


def series_filter(args: Mapping[str, str], name: str) -> frozenset[str] | None:
    """``coinbase:BTC-USD,kraken:ETH-USD`` -> the set of series ids (None: every series)."""
    text = args.get(name)
    if text is None:
        return None
    wanted = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        exchange, _, symbol = item.partition(":")
        normal = f"{exchange.lower()}:{symbol.upper()}"
        if not _SERIES.match(normal):
            raise ParamError(name, "expected a comma-separated list of EXCHANGE:BASE-QUOTE, "
                             f"such as coinbase:BTC-USD, got {_shown(item)}")
        wanted.add(normal)
    if not wanted:
        raise ParamError(name, "expected at least one EXCHANGE:BASE-QUOTE")
    return frozenset(wanted)


def text(args: Mapping[str, str], name: str, maximum: int = 64) -> str | None:
    """A free-text filter, at most ``maximum`` characters (None when not given)."""
    value = args.get(name)
    if value is None:
        return None
    if not value.strip() or len(value) > maximum:
        raise ParamError(name, f"expected 1 to {maximum} characters, got {_shown(value)}")
    return value.strip()
