"""Small pieces every adapter needs: JSON decoding that reports broken frames, sequence-gap
counting, and dictionary access that turns a missing field into :class:`MalformedFrame`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bcx.exchanges.base import MalformedFrame

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# A plain decimal number, as venues write prices (and JSON numbers). Stricter than float(),
# which also takes "NaN", "inf", "1_000" and surrounding blanks: stored verbatim, those
# would poison every reader downstream.
DECIMAL = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def request(raw: str) -> dict[str, Any] | None:
    """A client's frame, as the replay server reads it: the JSON object, or None when it is
    not one (each venue answers that with its own error frame)."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def loads(raw: str, parse_float: Callable[[str], Any] | None = None,
          parse_int: Callable[[str], Any] | None = None) -> Any:
    """The decoded frame; text that is not JSON is a broken frame.

    Frames are decoded by orjson (four times faster than ``json`` on a venue's frame: the
    tracker's largest cost per frame); what orjson refuses and ``json`` reads (``NaN``,
    lone surrogates, nesting past 1,024) is read by ``json``, so both agree on what a frame
    says. One difference remains: an integer beyond 64 bits comes back as a float, so a
    field read as an integer (:func:`field`) makes such a frame malformed. ``parse_float`` or
    ``parse_int`` (numbers kept as text) need ``json``."""
    if parse_float is None and parse_int is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw, parse_float=parse_float, parse_int=parse_int)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MalformedFrame(f"not JSON: {exc}") from None


def field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    """``doc[name]``, which must be of ``kind``; anything else makes the frame malformed."""
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise MalformedFrame(f"field {name!r}: expected {kind}, got {value!r}")
    return value


def decimal_text(value: Any, what: str) -> str:
    """A price as the decimal string the venue sent; rejects what is not a number."""
    if not isinstance(value, str):
        raise MalformedFrame(f"{what}: expected a decimal string, got {value!r}")
    # The common shape ("0.21437000": ASCII digits, one point) is checked by two string
    # methods, a quarter of the regular expression's cost; anything else by DECIMAL.
    if not (value.isascii() and value.replace(".", "", 1).isdigit()) and (
            not DECIMAL.fullmatch(value)):
        raise MalformedFrame(f"{what}: not a number: {value!r}")
    return value


def optional_decimal(value: Any, what: str) -> str | None:
    """:func:`decimal_text`, or None when the field is absent or null (optional sizes)."""
    return None if value is None else decimal_text(value, what)


def iso_to_ms(text: Any) -> int:
    """RFC 3339 ``2021-04-17T16:43:30.244075Z`` -> epoch ms (truncated, never via float)."""
    if not isinstance(text, str):
        raise MalformedFrame(f"time: expected a string, got {text!r}")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedFrame(f"time: not ISO-8601: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MS


def ms_to_iso(ms: int, digits: int = 6) -> str:
    """Epoch ms -> ``2021-04-17T16:43:30.244000Z`` with ``digits`` fractional digits."""
    when = _EPOCH + ms * _MS
    text = when.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[: len(text) - 6 + digits] if digits else text[: -7]) + "Z"


class GapCounter:
    """Last contiguous id per key: ``observe`` answers how many ids were skipped.

    An id at or below the last one (a replayed or out-of-order frame) is no gap and does not
    move the counter back.
    """

    def __init__(self) -> None:
        self._last: dict[Any, int] = {}

    def observe(self, key: Any, seq: int) -> int:
        last = self._last.get(key)
        if last is not None and seq <= last:
            return 0
        self._last[key] = seq
        return 0 if last is None else seq - last - 1

    def observe_before(self, key: Any, seq: int) -> int:
        """``seq`` is known to exist but was not seen itself (a heartbeat's last trade id): the
        ids below it not seen yet are missed; ``seq`` may still come, or is counted missed by
        the next id after it."""
        last = self._last.get(key)
        if last is not None and seq - 1 <= last:
            return 0
        self._last[key] = seq - 1
        return 0 if last is None else seq - 1 - last
