"""``bcx replay``: a local exchange that serves a recorded session over a real websocket.

It speaks the venue's side of the protocol through the exchange adapter's server-side class
methods: greeting frames first, then it waits for a valid subscription (a refused one gets the
venue's own error frame and no data), then it replays the recorded frames at recorded speed
times ``speed`` (0: as fast as the socket takes them). With ``loop`` it repeats forever, times
in the frames shifted to now and Bitfinex sequence numbers kept contiguous, so a demo looks
live. Every connection (reconnecting clients included) gets its own replay from the start.

Session files (``tests/data/*.session.jsonl``) hold one JSON object a line:
``{"dir":"connect","url":…}``, ``{"dir":"send","raw":…}``, ``{"dir":"recv","ts":…,"raw":…}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.protocol import State

from bcx import exchanges
from bcx.exchanges.base import FeedProtocol, Rewrite

log = logging.getLogger(__name__)

# Frames are queued to the socket in bursts of this many before yielding, at speed 0.
_BURST = 256


@dataclass(frozen=True)
class Frame:
    ts: float
    raw: str


@dataclass
class Session:
    """A recorded session split the way a venue plays it."""

    exchange: str
    url: str
    # What the recorded client sent, in order.
    sends: list[str]
    # Frames the venue sends as soon as a connection opens.
    greeting: list[Frame]
    # Everything else the venue sent, in recorded order.
    body: list[Frame]
    # Normalised symbols the recording carries data or acks for.
    symbols: frozenset[str] = field(default_factory=frozenset)


def infer_exchange(path: Path, url: str = "") -> str:
    """The exchange of a session: its file name (``kraken_ticker.session.jsonl``), else its
    connect URL's host."""
    for name in exchanges.NAMES:
        if path.name.lower().startswith(name):
            return name
    for name in exchanges.NAMES:
        if name in url.lower():
            return name
    raise ValueError(f"cannot tell the exchange of {path} (url {url!r}): pass --exchange "
                     f"({', '.join(exchanges.NAMES)})")


def load_session(path: str | Path, exchange: str | None = None) -> Session:
    """Read a session file; ValueError says which line is broken."""
    path = Path(path)
    url, sends, recvs = "", [], []
    seen_send = False
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                direction = entry["dir"]
                if direction == "connect":
                    url = str(entry.get("url", ""))
                elif direction == "send":
                    sends.append(str(entry["raw"]))
                    seen_send = True
                elif direction == "recv":
                    recvs.append((seen_send, Frame(float(entry["ts"]), str(entry["raw"]))))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a session line ({exc})") from None
    name = exchange or infer_exchange(path, url)
    adapter = exchanges.get(name)
    greeting: list[Frame] = []
    body: list[Frame] = []
    for after_send, frame in recvs:
        # Frames that came before the client spoke, and the venue's unprompted hello frames
        # at the very start, greet every connection; when the recorded client sent nothing
        # (Binance names streams in the URL), only the hello frames do.
        if not body and ((sends and not after_send) or adapter.is_greeting(frame.raw)):
            greeting.append(frame)
        else:
            body.append(frame)
    return Session(name, url, sends, greeting, body, _symbols(adapter, body))


def _symbols(adapter: type[FeedProtocol], body: Sequence[Frame]) -> frozenset[str]:
    """The symbols a recording carries ticks or trades of, read by the adapter itself (for
    strict checks)."""
    protocol = adapter([])
    found: set[str] = set()
    for frame in body:
        try:
            parsed = protocol.parse(frame.raw, int(frame.ts * 1000))
        except ValueError:
            continue
        found.update(tick.symbol for tick in parsed.ticks)
        found.update(trade.symbol for trade in parsed.trades)
    return frozenset(found)


class ReplayServer:
    """A websocket server on loopback replaying one session; start it in-process or via CLI.

    Options (all plain constructor arguments; the fault hooks apply to the first
    ``faults_for`` connections only, so a reconnecting client then gets a healthy feed):

    - ``speed``: recorded pace times this factor; 0 sends as fast as possible.
    - ``loop``: repeat forever; times are shifted to now (``shift_times`` overrides that).
    - ``strict_symbols``: refuse subscriptions to symbols the recording does not carry (the
      default accepts any well-formed symbol and serves the recording regardless).
    - ``close_after=N``: close the connection after N replayed frames (``abrupt`` drops the
      TCP connection without a closing handshake, as a 1006; else a normal 1000 close).
    - ``silent_after=N``: after N replayed frames send nothing more but keep the socket open.
    - ``inject={N: [frame, …]}``: send these frames before replayed frame N (``str`` as text,
      ``bytes`` as binary), e.g. garbage, binary or oversized frames.
    - ``close_at_end``: close the connection once the recording is done (not looping).
    - ``resume_at=N``: connections after the faulty ones start at recorded frame N, so a
      client that reconnects after ``close_after`` sees a gap (an outage) in the trade ids.

    Observability for tests and benchmarks: ``connections`` (count so far), ``received``
    (``(connection number, frame)`` for every client frame), ``frames_sent`` and
    ``send_seconds`` (time spent replaying, for the send rate).
    """

    def __init__(self, session: str | Path | Session, *, exchange: str | None = None,
                 speed: float = 1.0, loop: bool = False, host: str = "127.0.0.1",
                 port: int = 0, strict_symbols: bool = False, shift_times: bool | None = None,
                 close_after: int | None = None, silent_after: int | None = None,
                 inject: Mapping[int, Sequence[str | bytes]] | None = None,
                 faults_for: int = 1, abrupt: bool = True, close_at_end: bool = False,
                 resume_at: int | None = None):
        self.session = session if isinstance(session, Session) else load_session(session,
                                                                                 exchange)
        self.adapter = exchanges.get(self.session.exchange)
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = speed
        self.loop = loop
        self.host, self.port = host, port
        self.known = self.session.symbols if strict_symbols else None
        self.shift_times = loop if shift_times is None else shift_times
        self.close_after, self.silent_after = close_after, silent_after
        self.inject = {int(k): list(v) for k, v in (inject or {}).items()}
        self.faults_for, self.abrupt, self.close_at_end = faults_for, abrupt, close_at_end
        self.resume_at = resume_at
        self.connections = 0
        self.received: list[tuple[int, str]] = []
        self.frames_sent = 0
        self.send_seconds = 0.0
        self._encoded = [_text_frame(frame.raw) for frame in self.session.body]
        self._seqs = [s for s in map(self.adapter.frame_seq, (f.raw for f in self.session.body))
                      if s is not None]
        self._aio: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""

    # ---- lifecycle ----

    def start(self, timeout: float = 10.0) -> str:
        """Serve in a background thread; returns ``ws://host:port`` once listening."""
        self._thread = threading.Thread(target=self._run_thread, name="bcx-replay", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"replay server did not start on {self.host}:{self.port}: "
                               f"{self._error or 'timed out'}")
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and the listening socket; join the thread. Idempotent."""
        if self._thread is None:
            return
        if self._aio is not None and self._stopped is not None:
            # A closed loop raises RuntimeError: the server has already ended.
            with contextlib.suppress(RuntimeError):
                self._aio.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except OSError as exc:  # cannot listen: start() reports it
            self._error = exc
            self._ready.set()
        except BaseException as exc:  # noqa: BLE001 - reported to start() and the log
            self._error = exc
            self._ready.set()
            log.exception("replay server failed")

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or the CLI's stop signal)."""
        self._aio = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(self._handle, self.host, self.port, compression=None,
                         max_size=2**22, ping_interval=None, close_timeout=2) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://{self.host}:{port}"
            log.info("replaying %s (%s, %d frames) on %s", self.session.exchange,
                     "loop" if self.loop else "once", len(self.session.body), self.url)
            self._ready.set()
            await self._stopped.wait()
            server.close(close_connections=True)
            await server.wait_closed()

    # ---- one connection ----

    async def _handle(self, ws: ServerConnection) -> None:
        number = self.connections
        self.connections += 1
        faulty = number < self.faults_for
        subscribed = asyncio.Event()
        path = ws.request.path if ws.request is not None else "/"
        log.info("connection %d from %s, path %s", number, ws.remote_address, path)
        verdict = self.adapter.check_connect(path, self.known)
        for reply in verdict.replies:
            await ws.send(reply)
        if verdict.subscribed:
            subscribed.set()
        reader = asyncio.create_task(self._read(ws, number, subscribed))
        try:
            for frame in self.session.greeting:
                await ws.send(frame.raw)
            waiting = asyncio.create_task(subscribed.wait())
            await asyncio.wait((waiting, reader), return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if not subscribed.is_set():
                return  # the client left before subscribing
            await self._replay(ws, faulty)
            if self.close_at_end:
                await ws.close()
            await ws.wait_closed()
        except ConnectionClosed:
            pass
        except ConnectionError as exc:  # the client reset the connection mid-send
            log.info("connection %d dropped by the client: %s", number, exc)
        finally:
            reader.cancel()
            log.info("connection %d closed", number)

    async def _read(self, ws: ServerConnection, number: int, subscribed: asyncio.Event) -> None:
        try:
            async for message in ws:
                raw = message if isinstance(message, str) else message.decode("utf-8", "replace")
                self.received.append((number, raw))
                verdict = self.adapter.answer(raw, self.known)
                for reply in verdict.replies:
                    await ws.send(reply)
                if verdict.refused:
                    log.info("connection %d: refused %s", number, raw[:200])
                if verdict.subscribed:
                    subscribed.set()
        except ConnectionClosed:
            pass

    async def _replay(self, ws: ServerConnection, faulty: bool) -> None:
        body = self.session.body
        if not body:
            return
        aio = asyncio.get_running_loop()
        first_ts, span = body[0].ts, body[-1].ts - body[0].ts
        seq_span = (max(self._seqs) - min(self._seqs) + 1) if self._seqs else 0
        sent, shift_ms, rounds = 0, None, 0
        pending: list[bytes] = []
        started = time.perf_counter()
        try:
            while True:
                change = Rewrite()
                if self.shift_times:
                    # Shifted to now, and never behind the previous round's last time.
                    now_shift = int((time.time() - first_ts) * 1000)
                    floor = shift_ms + int(span * 1000) + 1 if shift_ms is not None else now_shift
                    shift_ms = max(now_shift, floor)
                    change = Rewrite(shift_ms=shift_ms)
                if rounds and seq_span:
                    change = Rewrite(shift_ms=change.shift_ms, seq_offset=rounds * seq_span)
                rewrite = bool(change.shift_ms or change.seq_offset)
                t0 = aio.time()
                skip = 0 if faulty or rounds or self.resume_at is None else self.resume_at
                if skip and self.speed:
                    t0 -= (body[min(skip, len(body) - 1)].ts - first_ts) / self.speed
                for index, frame in enumerate(body):
                    if index < skip:
                        continue
                    if faulty and (sent in self.inject or self._fault_due(sent)):
                        await self._flush(ws, pending)
                        if await self._fault(ws, sent):
                            return
                    if self.speed:
                        delay = t0 + (frame.ts - first_ts) / self.speed - aio.time()
                        if delay > 0:
                            await self._flush(ws, pending)
                            await asyncio.sleep(delay)
                    pending.append(_text_frame(self.adapter.rewrite(frame.raw, change))
                                   if rewrite else self._encoded[index])
                    sent += 1
                    if len(pending) >= _BURST:
                        await self._flush(ws, pending)
                await self._flush(ws, pending)
                rounds += 1
                if not self.loop:
                    return
        finally:
            self.send_seconds += time.perf_counter() - started

    async def _flush(self, ws: ServerConnection, pending: list[bytes]) -> None:
        """Write queued frames in one go. Server frames are unmasked and uncompressed, so
        whole frames are written to the transport directly: websockets' per-message send
        costs several times more and would make the replay, not the client, the bottleneck."""
        if not pending:
            return
        if ws.state is not State.OPEN:
            raise ConnectionClosedOK(None, None)
        ws.transport.write(b"".join(pending))
        self.frames_sent += len(pending)
        pending.clear()
        await ws.drain()

    def _fault_due(self, sent: int) -> bool:
        return (self.close_after is not None and sent >= self.close_after) or (
            self.silent_after is not None and sent >= self.silent_after)

    async def _fault(self, ws: ServerConnection, sent: int) -> bool:
        """Apply the fault hooks due before frame ``sent``; True when replay must end."""
        for extra in self.inject.get(sent, ()):
            await ws.send(extra)
        if self.close_after is not None and sent >= self.close_after:
            log.info("closing the connection after %d frames (fault hook)", sent)
            if self.abrupt and ws.transport is not None:
                ws.transport.abort()
            else:
                await ws.close()
            return True
        if self.silent_after is not None and sent >= self.silent_after:
            log.info("going silent after %d frames (fault hook)", sent)
            await ws.wait_closed()
            return True
        return False


def _text_frame(raw: str) -> bytes:
    """One unmasked, unfragmented websocket text frame (RFC 6455 section 5.2)."""
    payload = raw.encode("utf-8")
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def rest_server(session: Session, host: str = "127.0.0.1", port: int = 0, **options: Any
                ) -> Any:
    """The REST side of a replay (bcx.rest.server.RestServer) serving the session's trades;
    None for a venue without REST support."""
    from bcx import rest
    from bcx.rest.server import RestServer, session_trades

    if session.exchange not in rest.NAMES:
        return None
    trades = session_trades(session.exchange, ((f.ts, f.raw) for f in session.body))
    return RestServer(session.exchange, trades, host=host, port=port, **options)


def run(session_path: str, exchange: str | None, host: str, port: int, speed: float,
        loop: bool, strict_symbols: bool, rest_port: int | None = None) -> None:
    """The ``bcx replay`` command: print the websocket URL as the first stdout line and, with
    ``rest_port`` (0: any free port), the REST URL as the second; serve until SIGTERM/SIGINT."""
    from bcx.lifecycle import install_stop_handlers

    stop = threading.Event()
    install_stop_handlers(stop)
    server = ReplayServer(session_path, exchange=exchange, speed=speed, loop=loop, host=host,
                          port=port, strict_symbols=strict_symbols)
    url = server.start()
    print(url, flush=True)
    rest = rest_server(server.session, host, rest_port) if rest_port is not None else None
    if rest is not None:
        print(rest.start(), flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        if rest is not None:
            rest.stop()
        server.stop()
        log.info("replay stopped after %d connections, %d frames", server.connections,
                 server.frames_sent)
