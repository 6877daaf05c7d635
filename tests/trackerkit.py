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
    """A loopback websocket server; connection number n (from 0) runs ``script(conn, n)``."""

    def __init__(self, script: Script):
        self.script = script
        self.connections = 0
        self._lock = threading.Lock()
        self.server: Server = serve(self._handle, "127.0.0.1", 0, max_size=None,
                                    compression=None)
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
