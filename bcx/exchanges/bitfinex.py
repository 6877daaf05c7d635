"""Bitfinex websocket v2: the public ``ticker`` and ``trades`` channels with the SEQ_ALL flag on.

The client sends ``{"event":"conf","flags":65536}`` first, so every channel frame (data and
``hb`` alike) ends with one sequence number counted per connection over all channels; a jump
is a gap. Gaps are put on the symbol of the frame that revealed them, or on ``ANY_SYMBOL``
when that frame belongs to a channel this connection did not subscribe.

Data frames start with a chanId, valid for this connection only, announced by the
``subscribed`` ack. Values are JSON numbers: they are kept as the text the frame carries
(``47.914412330000005`` and ``4.9e-7`` survive verbatim), never passed through float. Ticker
frames carry no time, so ticks take the receive time; they feed the price (LAST_PRICE), bid and
ask series and carry BID_SIZE/ASK_SIZE.

The ``trades`` channel sends a snapshot of recent trades ``[chanId,[[ID,MTS,AMOUNT,PRICE],…],seq]``
(newest first; reported oldest first), then each trade twice: ``te`` when it executes and
``tu`` once stored. A trade is reported the first time its ID is seen on the connection (the
snapshot or ``te``; ``tu`` only when its ``te`` was missed). AMOUNT > 0 is a taker buy, < 0 a
taker sell; the size is AMOUNT's text without its sign. Trade IDs are global across pairs, so
they reveal no gaps: SEQ_ALL does. Each symbol takes two of the venue's 25 channel
subscriptions per connection.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from typing import Any, ClassVar

from bcx.exchanges.base import ANY_SYMBOL, FeedProtocol, MalformedFrame, Parsed, Rewrite, Verdict
from bcx.exchanges.common import GapCounter, decimal_text, loads, request
from bcx.ticks import BUY, SELL, Tick, Trade

SEQ_ALL = 65536
# Bitfinex's own currency codes -> the common ones (documented by the venue).
ALIASES = {"UST": "USDT"}
_NATIVE_ALIASES = {common: own for own, common in ALIASES.items()}
KNOWN_CHANNELS = frozenset({"ticker", "trades", "book", "candles", "status"})
# Where bid, ask and last price sit in a ticker array
# [BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE, ...].
BID, BID_SIZE, ASK, ASK_SIZE, LAST_PRICE = 0, 1, 2, 3, 6
# Channels this client subscribes per symbol.
CHANNELS = ("ticker", "trades")
# Trade IDs remembered per connection to drop the venue's te/tu duplicates: a tu follows its te
# within seconds, so the last few thousand IDs are plenty; older ones are forgotten.
SEEN_TRADES = 4096
_TRADE_UPDATES = ("te", "tu")
_PAIR = re.compile(r"^t([A-Z0-9]{3,}):?([A-Z0-9]{3,})$")
_TRAILING_SEQ = re.compile(r",(\d+)\]$")
# Trade frames as the replay server rewrites them: an update, a snapshot, one trade's ID and MTS.
_TRADE_UPDATE = re.compile(r'^\[\d+,"t[eu]",\[')
_TRADE_SNAPSHOT = re.compile(r"^\[\d+,\[\[\d+,\d+,")
_TRADE_ENTRY = re.compile(r"\[(\d+),(\d+),(?=[-\d.eE+]+,[-\d.eE+]+\])")

# Info codes after which the venue expects a fresh connection and subscriptions: 20051 asks
# clients to reconnect; 20061 ends a maintenance pause, after which channels must be
# resubscribed. (20060, maintenance starting, needs nothing: the feed just goes quiet.)
RECONNECT_CODES = {"20051": "the server asks clients to reconnect",
                   "20061": "maintenance ended, resubscribe"}


class Bitfinex(FeedProtocol):
    name: ClassVar[str] = "bitfinex"
    subscribe_deadline: ClassVar[float] = 10.0

    def __init__(self, symbols: list[str] | tuple[str, ...]):
        super().__init__(symbols)
        # chanId -> (channel, normalised symbol), per connection.
        self._channels: dict[int, tuple[str, str]] = {}
        self._seq = GapCounter()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def subscribe_frames(self) -> list[str]:
        frames = [json.dumps({"event": "conf", "flags": SEQ_ALL}, separators=(",", ":"))]
        frames += [json.dumps({"event": "subscribe", "channel": channel,
                               "symbol": self.to_native(symbol)}, separators=(",", ":"))
                   for symbol in self.symbols for channel in CHANNELS]
        return frames

    def parse(self, raw: str, received_ms: int) -> Parsed:
        msg = loads(raw, parse_float=str, parse_int=str)
        if isinstance(msg, dict):
            return self._event(msg)
        if not isinstance(msg, list) or len(msg) < 2:
            raise MalformedFrame("expected an event object or a channel array")
        chan_id = _int(msg[0], "chanId")
        channel, symbol = self._channels.get(chan_id, ("", ANY_SYMBOL))
        parsed = Parsed()
        if len(msg) >= 3 and isinstance(msg[-1], str) and msg[-1].isdigit():
            missed = self._seq.observe(None, int(msg[-1]))
            if missed:
                parsed.gaps.append((symbol, missed))
        if channel == "ticker" and isinstance(msg[1], list):
            parsed.ticks.append(self._ticker(symbol, msg[1], received_ms))
        elif channel == "trades" and isinstance(msg[1], list):
            # The snapshot, newest first: reported oldest first.
            for entry in reversed(msg[1]):
                self._trade(parsed, symbol, entry, received_ms)
        elif channel == "trades" and msg[1] in _TRADE_UPDATES and len(msg) >= 3:
            self._trade(parsed, symbol, msg[2], received_ms)
        else:
            # Heartbeats, and frames of channels we did not ask for: alive, nothing to store.
            parsed.keepalive = True
        return parsed

    def _ticker(self, symbol: str, values: list[Any], received_ms: int) -> Tick:
        if len(values) <= LAST_PRICE:
            raise MalformedFrame(f"ticker array of {len(values)} values")
        bid, ask, price = (decimal_text(values[i], name) for i, name in
                           ((BID, "BID"), (ASK, "ASK"), (LAST_PRICE, "LAST_PRICE")))
        bid_size, ask_size = (decimal_text(values[i], name) for i, name in
                              ((BID_SIZE, "BID_SIZE"), (ASK_SIZE, "ASK_SIZE")))
        return Tick(self.name, symbol, received_ms, price=price, bid=bid, ask=ask,
                    received_ns=received_ms * 1_000_000, bid_size=bid_size, ask_size=ask_size)

    def _trade(self, parsed: Parsed, symbol: str, entry: Any, received_ms: int) -> None:
        """Add the trade ``[ID, MTS, AMOUNT, PRICE]`` unless its ID was seen already."""
        if not isinstance(entry, list) or len(entry) < 4:
            raise MalformedFrame(f"trade entry {entry!r}")
        _int(entry[0], "trade ID")
        trade_id = entry[0]  # the text the frame carries (numbers are read as text here)
        ms = _int(entry[1], "trade MTS")
        amount = decimal_text(entry[2], "trade AMOUNT")
        price = decimal_text(entry[3], "trade PRICE")
        if trade_id in self._seen:
            return
        self._seen[trade_id] = None
        if len(self._seen) > SEEN_TRADES:
            self._seen.popitem(last=False)
        side = SELL if amount.startswith("-") else BUY
        parsed.trades.append(Trade(self.name, symbol, ms, price=price, size=amount.lstrip("-"),
                                   side=side, id=trade_id, received_ns=received_ms * 1_000_000))

    def _event(self, msg: dict[str, Any]) -> Parsed:
        event = msg.get("event")
        if event == "subscribed":
            chan_id = _int(msg.get("chanId"), "chanId")
            native = msg.get("symbol") or f"t{msg.get('pair')}"
            self._channels[chan_id] = (str(msg.get("channel")), self.symbol_of(str(native)))
            return Parsed(keepalive=True)
        if event == "unsubscribed":
            self._channels.pop(_int(msg.get("chanId"), "chanId"), None)
            return Parsed(keepalive=True)
        if event == "ping":
            pong = {"event": "pong", "ts": int(time.time() * 1000)}
            if "cid" in msg:
                pong["cid"] = int(msg["cid"]) if str(msg["cid"]).isdigit() else msg["cid"]
            return Parsed(replies=[json.dumps(pong, separators=(",", ":"))], keepalive=True)
        if event == "error":
            return Parsed(error=f"code {msg.get('code')}: {msg.get('msg')}")
        if event == "conf" and msg.get("status") not in (None, "OK"):
            return Parsed(error=f"conf refused: {msg.get('status')}")
        code = str(msg.get("code"))  # numbers are parsed as their text here
        if event == "info" and code in RECONNECT_CODES:
            return Parsed(keepalive=True, reconnect=f"info {code}: {RECONNECT_CODES[code]}")
        if event in ("info", "conf", "pong"):
            return Parsed(keepalive=True)
        return Parsed()

    @staticmethod
    def to_native(symbol: str) -> str:
        base, sep, quote = symbol.upper().partition("-")
        if not sep or not base or not quote:
            raise ValueError(f"not a BASE-QUOTE symbol: {symbol!r}")
        base, quote = _NATIVE_ALIASES.get(base, base), _NATIVE_ALIASES.get(quote, quote)
        # Pairs of two 3-letter codes are written together, longer codes with a colon.
        return f"t{base}{quote}" if len(base) == len(quote) == 3 else f"t{base}:{quote}"

    @staticmethod
    def from_native(native: str) -> str:
        text = native if native.startswith("t") else f"t{native}"
        if ":" in text:
            base, _, quote = text[1:].partition(":")
        elif len(text) == 7:
            base, quote = text[1:4], text[4:]
        else:
            raise ValueError(f"not a Bitfinex trading pair: {native!r}")
        if not _PAIR.match(f"t{base}:{quote}"):
            raise ValueError(f"not a Bitfinex trading pair: {native!r}")
        return f"{ALIASES.get(base, base)}-{ALIASES.get(quote, quote)}"

    # ---- server side ----

    @classmethod
    def is_greeting(cls, raw: str) -> bool:
        return raw.startswith("{") and '"event":"info"' in raw

    @classmethod
    def answer(cls, raw: str, known: frozenset[str] | None = None) -> Verdict:
        msg = request(raw)
        if msg is None:
            return _refuse("invalid request", 10000)
        event = msg.get("event")
        if event == "ping":
            pong = {"event": "pong", "ts": int(time.time() * 1000), "cid": msg.get("cid")}
            return Verdict(replies=[json.dumps(pong, separators=(",", ":"))])
        if event in ("conf", "unsubscribe"):
            return Verdict()
        if event != "subscribe":
            return _refuse("unknown event", 10000)
        channel, symbol = msg.get("channel"), msg.get("symbol")
        if channel not in KNOWN_CHANNELS:
            return _refuse("channel: unknown", 10302, channel=channel, symbol=symbol)
        try:
            normalised = cls.from_native(str(symbol))
        except ValueError:
            normalised = None
        if normalised is None or (known is not None and normalised not in known):
            return _refuse("symbol: invalid", 10300, channel=channel, symbol=symbol)
        return Verdict(subscribed=True)

    @classmethod
    def frame_seq(cls, raw: str) -> int | None:
        match = _TRAILING_SEQ.search(raw) if raw.startswith("[") else None
        return int(match.group(1)) if match else None

    @classmethod
    def rewrite(cls, raw: str, change: Rewrite) -> str:
        if not raw.startswith("["):
            return raw
        if change.shift_ms and (_TRADE_UPDATE.match(raw) or _TRADE_SNAPSHOT.match(raw)):
            # Trades carry their time MTS: [ID,MTS,AMOUNT,PRICE]; only MTS changes.
            raw = _TRADE_ENTRY.sub(
                lambda m: f"[{m.group(1)},{int(m.group(2)) + change.shift_ms},", raw)
        if not change.seq_offset:
            return raw
        return _TRAILING_SEQ.sub(lambda m: f",{int(m.group(1)) + change.seq_offset}]", raw)


def _int(value: Any, what: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise MalformedFrame(f"{what}: expected an integer, got {value!r}")


def _refuse(message: str, code: int, **extra: Any) -> Verdict:
    frame = json.dumps({"event": "error", **extra, "msg": message, "code": code},
                       separators=(",", ":"))
    return Verdict(replies=[frame], refused=True)
