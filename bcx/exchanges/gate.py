"""The plausibility gate: which ticks and trades an adapter read are fit to store.

Adapters judge a frame's syntax (``common.decimal_text`` refuses what is not a decimal number,
NaN included); the gate judges its sense, once for every venue: the tracker's feed loop passes
every parsed tick through :meth:`Gate.admit` before the writer sees it. A tick whose event time
or symbol is implausible is refused whole; a value that is implausible is dropped from its
tick alone (a tick left with no value is dropped; a size goes with its bid or ask). A trade is
judged whole by :meth:`Gate.admit_trades`: the same time and symbol rules, a price above 0, a
size at least 0, a bounded id. Every refusal says why (:data:`REASONS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bcx.exchanges.base import ANY_SYMBOL
from bcx.ticks import BUY, SELL, Tick, Trade

# Bitcoin's genesis block was mined on 2009-01-03: no crypto market traded earlier. The past
# is guarded by this fixed floor, not by "now minus something": recordings years old replay.
FLOOR_MS = 1_230_940_800_000  # 2009-01-03T00:00:00Z
# Longest decimal text stored. Real prices and sizes take under 25 characters
# ("47.914412330000005", "0.00000049", "4.9e-7"); a longer one is a broken or hostile frame.
MAX_DECIMAL_CHARS = 40
# Longest trade id stored. Venue ids are integers (under 20 digits) or, for Kraken v1, the
# synthesised "<time>-<n>" (about 20 characters).
MAX_ID_CHARS = 64

FUTURE, PAST, VALUE, UNSUBSCRIBED = "future", "past", "value", "unsubscribed"
# Why something was refused; the tracker counts each as ``rejected_<reason>``.
REASONS = (FUTURE, PAST, VALUE, UNSUBSCRIBED)

# The tick fields the gate checks, and whether 0 is a plausible value of each: a price must be
# above 0; a size (trade or book quantity) may be 0.
ZERO_ALLOWED: dict[str, bool] = {"price": False, "bid": False, "ask": False,
                                 "bid_size": True, "ask_size": True}
# The series values among them: a tick is kept when one of these is; a size without its
# price (the bid or ask it belongs to) is dropped with it.
SERIES_FIELDS = ("price", "bid", "ask")
SIZE_OF = {"bid": "bid_size", "ask": "ask_size"}


@dataclass(frozen=True)
class Refusal:
    """One refused tick (``future``, ``past``, ``unsubscribed``) or one dropped value
    (``value``), with a short description for the log."""

    reason: str
    symbol: str
    detail: str


def time_problem(ms: int, now_ms: int, max_skew_ms: int) -> tuple[str, str] | None:
    """(reason, detail) when an event time is implausible: before :data:`FLOOR_MS`, or later
    than ``now_ms + max_skew_ms`` (that instant itself is accepted); None when plausible."""
    if ms > now_ms + max_skew_ms:
        return FUTURE, (f"event time {ms} ms is {(ms - now_ms) / 1000:.3f}s ahead of the clock"
                        f" (max_clock_skew {max_skew_ms / 1000:g}s)")
    if ms < FLOOR_MS:
        return PAST, f"event time {ms} ms is before 2009-01-03"
    return None


def value_problem(text: str, zero_allowed: bool = False) -> str | None:
    """Why a decimal text is no plausible value; None when it is one. It must be at most
    :data:`MAX_DECIMAL_CHARS` long and finite as a number; a price (``zero_allowed`` False)
    must be above 0, a size at least 0. A text whose float is 0 or infinite ("1e-400",
    "1e999") is refused as a price: every reader downstream computes with floats."""
    if len(text) > MAX_DECIMAL_CHARS:
        return f"{len(text)} characters, over {MAX_DECIMAL_CHARS}"
    try:
        number = float(text)
    except ValueError:
        return "not a number"
    if 0 < number < math.inf:  # every real price: one comparison on the hot path
        return None
    if not math.isfinite(number):
        return "not finite"
    if number < 0 or text.startswith("-"):
        return "negative"
    if number == 0 and not zero_allowed:
        return "not above 0 as a number"
    return None


def trade_problem(trade: Trade, symbols: frozenset[str], now_ms: int,
                  max_skew_ms: int) -> tuple[str, str] | None:
    """(reason, detail) when a trade is implausible; None when it is fit to store."""
    if trade.symbol not in symbols:
        return UNSUBSCRIBED, f"symbol {trade.symbol} is not subscribed"
    problem = time_problem(trade.ms, now_ms, max_skew_ms)
    if problem is not None:
        return problem
    for name, zero_allowed in (("price", False), ("size", True)):
        text = getattr(trade, name)
        why = value_problem(text, zero_allowed)
        if why is not None:
            return VALUE, f"trade {trade.id[:MAX_ID_CHARS]!r} {name} {_shown(text)}: {why}"
    if trade.side not in (BUY, SELL):
        return VALUE, f"trade {trade.id[:MAX_ID_CHARS]!r} side {trade.side!r}: not buy or sell"
    if not trade.id or len(trade.id) > MAX_ID_CHARS:
        return VALUE, (f"trade id {trade.id[:MAX_ID_CHARS]!r}: {len(trade.id)} characters, "
                       f"not 1 to {MAX_ID_CHARS}")
    return None


class Gate:
    """The gate of one feed: the symbols it subscribed and the clock skew it tolerates."""

    def __init__(self, symbols: Iterable[str], max_clock_skew_ms: int):
        self.symbols = frozenset(symbols)
        self.max_clock_skew_ms = max_clock_skew_ms

    def ours(self, symbol: str) -> bool:
        """True for a subscribed symbol (and for ``ANY_SYMBOL``, the connection itself)."""
        return symbol in self.symbols or symbol == ANY_SYMBOL

    def admit(self, ticks: Sequence[Tick], now_ms: int) -> tuple[list[Tick], list[Refusal]]:
        """The ticks fit to store (implausible values removed from them) and what was refused.
        ``now_ms`` is the clock the event times are judged by (the frame's receipt time)."""
        admitted: list[Tick] = []
        refused: list[Refusal] = []
        symbols, latest = self.symbols, now_ms + self.max_clock_skew_ms
        for tick in ticks:
            if tick.symbol not in symbols:
                refused.append(Refusal(UNSUBSCRIBED, tick.symbol,
                                       f"symbol {tick.symbol} is not subscribed"))
                continue
            if not FLOOR_MS <= tick.ms <= latest:  # time_problem's bounds, in one comparison
                problem = time_problem(tick.ms, now_ms, self.max_clock_skew_ms)
                if problem is not None:
                    refused.append(Refusal(problem[0], tick.symbol, problem[1]))
                    continue
            if _plainly_plausible(tick) or self._admit_values(tick, refused):
                admitted.append(tick)
        return admitted, refused

    @staticmethod
    def _admit_values(tick: Tick, refused: list[Refusal]) -> bool:
        """Drop the implausible values of ``tick`` (a size with its bid or ask), each one
        counted in ``refused``; whether a series value is left."""
        kept = False
        for name, zero_allowed in ZERO_ALLOWED.items():
            text = getattr(tick, name)
            if text is None:
                continue
            why = value_problem(text, zero_allowed)
            if why is None:
                kept = kept or name in SERIES_FIELDS
            else:
                setattr(tick, name, None)
                refused.append(Refusal(VALUE, tick.symbol, f"{name} {_shown(text)}: {why}"))
        for name, size in SIZE_OF.items():
            if getattr(tick, name) is None:
                setattr(tick, size, None)
        return kept

    def admit_trades(self, trades: Sequence[Trade], now_ms: int
                     ) -> tuple[list[Trade], list[Refusal]]:
        """The trades fit to store and what was refused; a trade is refused whole, by the
        rules of :meth:`admit` (``now_ms`` likewise the frame's receipt time)."""
        admitted: list[Trade] = []
        refused: list[Refusal] = []
        for trade in trades:
            problem = trade_problem(trade, self.symbols, now_ms, self.max_clock_skew_ms)
            if problem is None:
                admitted.append(trade)
            else:
                refused.append(Refusal(problem[0], trade.symbol, problem[1]))
        return admitted, refused


def _plainly_plausible(tick: Tick) -> bool:
    """True when every value of ``tick`` passes the one test every value of a real tick
    passes: under the length limit and between 0 and infinity as a number (no check of
    :func:`value_problem` can then fail), with a series value and no size without its bid or
    ask. False sends the tick through the value-by-value checks. The tracker's whole budget
    per tick is a few microseconds: this is most of the gate's share."""
    bid, ask = tick.bid, tick.ask
    if (tick.price is None and bid is None and ask is None
            or bid is None and tick.bid_size is not None
            or ask is None and tick.ask_size is not None):
        return False
    longest, inf = MAX_DECIMAL_CHARS, math.inf
    try:
        for text in (tick.price, bid, ask, tick.bid_size, tick.ask_size):
            if text is not None and not (len(text) <= longest and 0 < float(text) < inf):
                return False
    except ValueError:
        return False
    return True


def _shown(text: str) -> str:
    """A value for the log: quoted, and cut short when it is over the length limit."""
    if len(text) <= MAX_DECIMAL_CHARS:
        return repr(text)
    return f"{text[:MAX_DECIMAL_CHARS]!r}…"
