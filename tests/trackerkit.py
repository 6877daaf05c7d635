"""Helpers of the tracker tests: a config for a tracker pointed at local servers, a scripted
websocket server whose every connection runs a test-supplied script, and reading what a
recorded session should produce, computed from the recording without the adapters."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.sync.server import Server, ServerConnection, serve

from bcx import config as configmod
from tests.support import recv_frames

DATA = Path(__file__).parent / "data"
COINBASE = DATA / "coinbase_ticker.session.jsonl"
# The products of the Coinbase recording.
COINBASE_PRODUCTS = ["SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC",
                     "DASH-BTC", "NU-GBP", "CRV-EUR", "SKL-GBP"]

Script = Callable[[ServerConnection, int], None]


def tracker_config(tmp_path: Path, redis_url: str, exchanges: dict[str, tuple[str, list[str]]],
                   mode: str = "standalone", **tracker: Any) -> configmod.Config:
    """A Config streaming ``exchanges`` (name -> (url, symbols)) into ``redis_url`` with fast
    test timings unless ``tracker`` overrides them."""
    settings = {"batch_size": 500, "flush_interval": "20ms", "backoff_initial": "50ms",
                "backoff_max": "200ms", "silence_timeout": "5s", "ping_interval": "1s",
                "stats_interval": "100ms", "feed_down_after": 3}
    settings.update(tracker)
    settings["exchanges"] = " ".join(exchanges)
    lines = ["[redis]", f"url = {redis_url}", f"mode = {mode}", "[tracker]"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    for name, (url, symbols) in exchanges.items():
        lines += [f"[exchange:{name}]", f"url = {url}", f"symbols = {' '.join(symbols)}"]
    path = tmp_path / "bcx.conf"
    path.write_text("\n".join(lines) + "\n")
    return configmod.load(str(path), env={})


class ScriptedServer:
    """A loopback websocket server; connection number n (from 0) runs ``script(conn, n)``.
    ``pings`` counts the ping frames it received (websockets answers them itself)."""

    def __init__(self, script: Script):
        self.script = script
        self.connections = 0
        self.pings = 0
        self._lock = threading.Lock()
        scripted = self

        class Counting(ServerConnection):
            def process_event(self, event: object) -> None:
                if isinstance(event, Frame) and event.opcode is Opcode.PING:
                    with scripted._lock:
                        scripted.pings += 1
                super().process_event(event)

        self.server: Server = serve(self._handle, "127.0.0.1", 0, max_size=None,
                                    compression=None, create_connection=Counting)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}"

    def _handle(self, conn: ServerConnection) -> None:
        with self._lock:
            number = self.connections
            self.connections += 1
        # The client closing mid-script ends the script; that is no error of the test's.
        with contextlib.suppress(Exception):
            self.script(conn, number)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


@contextmanager
def scripted(script: Script) -> Iterator[ScriptedServer]:
    with ScriptedServer(script) as server:
        yield server


# --------------------------------------------------------------------------- recordings


def session_frames(name: str) -> list[str]:
    """The frames a recorded session's server sent, in order."""
    return [raw for _, raw in recv_frames(DATA / f"{name}.session.jsonl")]


def expected_updates(name: str) -> list[tuple[str, str, str, int | None]]:
    """(native symbol, field, value, event ms or None when the frame has no time) for every
    update the recording carries, read straight from the protocol notes."""
    out: list[tuple[str, str, str, int | None]] = []
    reader = _READERS[name]
    channels: dict[str, str] = {}
    for raw in session_frames(name):
        # Numbers stay the text the frame carries: that text is what must be stored.
        msg = json.loads(raw, parse_float=str, parse_int=str)
        out.extend(reader(msg, channels))
    return out


def _coinbase(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, str, int | None]]:
    from datetime import datetime

    if not isinstance(msg, dict) or msg.get("type") != "ticker":
        return []
    when = datetime.fromisoformat(msg["time"])
    ms = int(when.timestamp()) * 1000 + when.microsecond // 1000
    product = msg["product_id"]
    return [(product, field, msg[key], ms)
            for field, key in (("price", "price"), ("bid", "best_bid"), ("ask", "best_ask"))
            if msg.get(key) is not None]


def _binance(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, str, int | None]]:
    data = msg["data"]
    stream = msg["stream"]
    if stream.endswith("@bookTicker"):
        return [(data["s"], "bid", data["b"], None), (data["s"], "ask", data["a"], None)]
    if stream.endswith("@aggTrade") or stream.endswith("@trade"):
        return [(data["s"], "price", data["p"], int(data["T"]))]
    return []


def _bitfinex(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, str, int | None]]:
    if isinstance(msg, dict):
        if msg.get("event") == "subscribed" and msg.get("channel") == "ticker":
            channels[msg["chanId"]] = msg["symbol"]
        return []
    if not isinstance(msg, list) or msg[0] not in channels or not isinstance(msg[1], list):
        return []
    values = msg[1]
    symbol = channels[msg[0]]
    return [(symbol, "bid", values[0], None), (symbol, "ask", values[2], None),
            (symbol, "price", values[6], None)]


def _kraken(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, str, int | None]]:
    if not isinstance(msg, list) or len(msg) < 4 or msg[-2] != "ticker":
        return []
    body, pair = msg[1], msg[-1]
    return [(pair, "price", body["c"][0], None), (pair, "bid", body["b"][0], None),
            (pair, "ask", body["a"][0], None)]


_READERS = {"coinbase_ticker": _coinbase, "binance_bookticker": _binance,
            "bitfinex_ticker": _bitfinex, "kraken_ticker": _kraken}


# --------------------------------------------------------------------------- trades and sizes
# Read from PROTOCOLS.md, sharing nothing with the adapters: what each recorded trade is and
# what top-of-book sizes each ticker frame carries.

# (native symbol, trade id) -> (exchange time ms, price, size, taker side)
TradeKey = tuple[str, str]
TradeValue = tuple[int, str, str, str]
TRADE_SESSIONS = ("coinbase_ticker", "binance_bookticker", "bitfinex_ticker", "kraken_trade")


def expected_trades(name: str) -> dict[TradeKey, TradeValue]:
    """Every distinct trade a recording carries, keyed by (native symbol, trade id); the first
    report of an id wins (Bitfinex repeats each as ``te`` and ``tu``)."""
    out: dict[TradeKey, TradeValue] = {}
    channels: dict[str, str] = {}
    for raw in session_frames(name):
        msg = json.loads(raw, parse_float=str, parse_int=str)
        for symbol, trade_id, value in _TRADE_READERS[name](msg, channels):
            out.setdefault((symbol, trade_id), value)
    return out


def _iso_ms(text: str) -> int:
    from datetime import datetime

    when = datetime.fromisoformat(text)
    return int(when.timestamp()) * 1000 + when.microsecond // 1000


def _coinbase_trades(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, TradeValue]]:
    # match / last_match: ``side`` is the maker's, the taker's is the other one.
    if not isinstance(msg, dict) or msg.get("type") not in ("match", "last_match"):
        return []
    taker = {"buy": "sell", "sell": "buy"}[msg["side"]]
    return [(msg["product_id"], msg["trade_id"],
             (_iso_ms(msg["time"]), msg["price"], msg["size"], taker))]


def _binance_trades(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, TradeValue]]:
    # trade: id t; aggTrade: id a. m true: the buyer was maker, the taker sold.
    data, stream = msg["data"], msg["stream"]
    if stream.endswith("@aggTrade"):
        trade_id = data["a"]
    elif stream.endswith("@trade"):
        trade_id = data["t"]
    else:
        return []
    return [(data["s"], trade_id,
             (int(data["T"]), data["p"], data["q"], "sell" if data["m"] else "buy"))]


def _bitfinex_trades(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, TradeValue]]:
    # Snapshot [chanId, [[ID, MTS, AMOUNT, PRICE], ...], seq]; updates [chanId, "te"|"tu",
    # [ID, MTS, AMOUNT, PRICE], seq]. AMOUNT > 0 a buy, < 0 a sell.
    if isinstance(msg, dict):
        if msg.get("event") == "subscribed" and msg.get("channel") == "trades":
            channels[msg["chanId"]] = msg["symbol"]
        return []
    if msg[0] not in channels:
        return []
    if isinstance(msg[1], list):
        entries = msg[1]
    elif msg[1] in ("te", "tu"):
        entries = [msg[2]]
    else:
        return []
    out = []
    for trade_id, mts, amount, price in entries:
        side, size = ("sell", amount[1:]) if amount.startswith("-") else ("buy", amount)
        out.append((channels[msg[0]], trade_id, (int(mts), price, size, side)))
    return out


def _kraken_trades(msg: Any, channels: dict[str, str]) -> list[tuple[str, str, TradeValue]]:
    # [channelID, [[price, volume, time, side b/s, orderType, misc], ...], "trade", pair].
    # v1 has no trade ids: the adapter names each "<time text>-<n>", n counting the earlier
    # entries of the frame with the same time text (documented in bcx/exchanges/kraken.py).
    if not isinstance(msg, list) or len(msg) < 4 or msg[-2] != "trade":
        return []
    out, seen = [], []
    for price, volume, when, side, *_ in msg[1]:
        seconds, _, fraction = when.partition(".")
        ms = int(seconds) * 1000 + int((fraction + "000")[:3])
        out.append((msg[-1], f"{when}-{seen.count(when)}",
                    (ms, price, volume, {"b": "buy", "s": "sell"}[side])))
        seen.append(when)
    return out


_TRADE_READERS = {"coinbase_ticker": _coinbase_trades, "binance_bookticker": _binance_trades,
                  "bitfinex_ticker": _bitfinex_trades, "kraken_trade": _kraken_trades}


def expected_sizes(name: str) -> list[tuple[str, str | None, str | None]]:
    """(native symbol, best bid size, best ask size) of every frame that carries the best bid
    and ask, in order; None where the venue's frame has no size (Coinbase 2021 tickers)."""
    out: list[tuple[str, str | None, str | None]] = []
    channels: dict[str, str] = {}
    for raw in session_frames(name):
        msg = json.loads(raw, parse_float=str, parse_int=str)
        out.extend(_SIZE_READERS[name](msg, channels))
    return out


def _coinbase_sizes(msg: Any, channels: dict[str, str]) -> list[tuple[str, Any, Any]]:
    if not isinstance(msg, dict) or msg.get("type") != "ticker":
        return []
    return [(msg["product_id"], msg.get("best_bid_size"), msg.get("best_ask_size"))]


def _binance_sizes(msg: Any, channels: dict[str, str]) -> list[tuple[str, Any, Any]]:
    data = msg["data"]
    return [(data["s"], data["B"], data["A"])] if msg["stream"].endswith("@bookTicker") else []


def _bitfinex_sizes(msg: Any, channels: dict[str, str]) -> list[tuple[str, Any, Any]]:
    # [BID, BID_SIZE, ASK, ASK_SIZE, ...]
    if isinstance(msg, dict):
        if msg.get("event") == "subscribed" and msg.get("channel") == "ticker":
            channels[msg["chanId"]] = msg["symbol"]
        return []
    if msg[0] not in channels or not isinstance(msg[1], list):
        return []
    return [(channels[msg[0]], msg[1][1], msg[1][3])]


def _kraken_sizes(msg: Any, channels: dict[str, str]) -> list[tuple[str, Any, Any]]:
    # b / a: [price, wholeLotVolume, lotVolume]
    if not isinstance(msg, list) or len(msg) < 4 or msg[-2] != "ticker":
        return []
    return [(msg[-1], msg[1]["b"][2], msg[1]["a"][2])]


_SIZE_READERS = {"coinbase_ticker": _coinbase_sizes, "binance_bookticker": _binance_sizes,
                 "bitfinex_ticker": _bitfinex_sizes, "kraken_ticker": _kraken_sizes}
