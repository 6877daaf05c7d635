"""The REST side of ``bcx replay``: a local HTTP server that answers each venue's trades and
candles endpoints (bcx.rest.<venue> ``route``/``serve_*``) in the venue's format, from the
trades of a recorded session and from generated candles, so tests and the demo need no
network.

Fault hook: ``throttle_first=N`` answers the first N requests ``429`` with ``Retry-After:
<retry_after>`` (Binance's and Coinbase's way of saying "slow down").
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from bcx.exchanges.base import MalformedFrame
from bcx.rest import venue as rest_venue
from bcx.rollups import Candle, dec_text
from bcx.ticks import Trade

log = logging.getLogger(__name__)


class GeneratedCandles:
    """Deterministic one-per-bucket OHLCV candles of any past range: the same bucket always
    has the same values. Every ``missing_every``-th bucket has no candle (no trades then: the
    venue has nothing to give); buckets before ``since_ms`` or not yet closed have none."""

    def __init__(self, base_price: str = "30000", missing_every: int = 997, since_ms: int = 0):
        self.base = Decimal(base_price)
        self.missing_every = missing_every
        self.since_ms = since_ms

    def __call__(self, start_ms: int, end_ms: int, interval_s: int) -> list[Candle]:
        step = interval_s * 1000
        now = time.time_ns() // 1_000_000
        first = max(start_ms, self.since_ms)
        first = -(-first // step) * step
        return [candle for bucket in range(first, min(end_ms, now - step + 1), step)
                if (candle := self.candle(bucket, interval_s)) is not None]

    def candle(self, start_ms: int, interval_s: int) -> Candle | None:
        index = start_ms // (interval_s * 1000)
        if self.missing_every and index % self.missing_every == 0:
            return None
        digest = hashlib.sha256(f"{start_ms}:{interval_s}".encode()).digest()
        wave = Decimal(index % 2000 - 1000) / 100  # a slow saw-tooth around the base
        open_ = self.base + wave + Decimal(digest[0]) / 100
        close = self.base + wave + Decimal(digest[1]) / 100
        high = max(open_, close) + Decimal(digest[2]) / 100
        low = min(open_, close) - Decimal(digest[3]) / 100
        count = 1 + digest[4] % 50
        volume = Decimal(1 + digest[5] * 256 + digest[6]) / 10000
        buy = volume * Decimal(digest[7] % 100) / 100
        quote = volume * (open_ + close) / 2
        return Candle(start_ms, dec_text(open_), dec_text(high), dec_text(low), dec_text(close),
                      count, dec_text(volume), dec_text(quote.quantize(Decimal("0.00000001"))),
                      dec_text(buy))


class RestServer:
    """One venue's REST endpoints on loopback; ``start()`` returns ``http://host:port``."""

    def __init__(self, exchange: str, trades: Iterable[Trade] = (),
                 candles: GeneratedCandles | None = None, host: str = "127.0.0.1",
                 port: int = 0, throttle_first: int = 0, retry_after: float = 1):
        self.exchange = exchange
        self.venue = rest_venue(exchange)
        self.trades: dict[str, list[Trade]] = {}
        for trade in trades:
            self.trades.setdefault(trade.symbol, []).append(trade)
        self.candles = candles or GeneratedCandles()
        self.host, self.port = host, port
        self.throttle_first = throttle_first
        self.retry_after = retry_after
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.throttled = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        server.daemon_threads = True
        self._server = server
        self.url = f"http://{self.host}:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="bcx-replay-rest", daemon=True)
        self._thread.start()
        log.info("REST %s on %s (%d trades)", self.exchange, self.url,
                 sum(map(len, self.trades.values())))
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, target: str) -> tuple[int, bytes, dict[str, str]]:
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query))
        with self.lock:
            self.requests.append((parts.path, params))
            if self.throttle_first > 0:
                self.throttle_first -= 1
                self.throttled += 1
                return 429, b'{"code":-1003,"msg":"Too many requests."}', {
                    "Retry-After": f"{self.retry_after:g}"}
        found = self.venue.route(parts.path)
        if found is None:
            return 404, b'{"message":"NotFound"}', {}
        kind, native = found
        try:
            if kind == "trades":
                reply = self.venue.serve_trades(native, params, self._trades_of(native, params))
            else:
                reply = self.venue.serve_candles(native, params, self.candles)
        except (ValueError, MalformedFrame) as exc:
            return 400, json.dumps({"message": str(exc)}).encode(), {}
        return reply.status, reply.encode(), reply.headers

    def _trades_of(self, native: str, params: dict[str, str]) -> Sequence[Trade]:
        name = native or params.get("symbol") or params.get("pair") or ""
        for symbol, trades in self.trades.items():
            if name.upper() in _natives(self.exchange, symbol):
                return trades
        return []


def _natives(exchange: str, symbol: str) -> set[str]:
    from bcx.exchanges import get

    names = {symbol.upper(), symbol.replace("-", "").upper()}
    names.add(get(exchange).to_native(symbol).upper())
    venue = rest_venue(exchange)
    if hasattr(venue, "native"):
        names.add(venue.native(symbol).upper())
    return names


def _handler(server: RestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            status, body, headers = server.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("REST %s", format % args)

    return Handler


def session_trades(exchange: str, frames: Iterable[tuple[float, str]]) -> list[Trade]:
    """Every trade a recorded session carries, read by the venue's own adapter."""
    from bcx.exchanges import get

    protocol = get(exchange)([])
    found: list[Trade] = []
    for ts, raw in frames:
        try:
            found.extend(protocol.parse(raw, int(ts * 1000)).trades)
        except ValueError:
            continue
    return found
