"""One exchange's websocket connection loop: connect, subscribe, read frames into the writer,
and reconnect with back-off whenever the connection fails, closes or goes silent.

The loop knows nothing of any exchange's format: the adapter's :class:`FeedProtocol` turns
text frames into ticks. Nothing a server sends ends the loop; only a stop request does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import websocket
from websocket import ABNF, frame_buffer

from bcx.config import TrackerConfig
from bcx.events import FIRING, RESOLVED, TriggerEvent
from bcx.exchanges.base import FeedProtocol, MalformedFrame
from bcx.exchanges.gate import Gate, Refusal
from bcx.lifecycle import Backoff
from bcx.secrets import Redactor, mask_url
from bcx.ticks import Tick, Trade
from bcx.tracker.backfill import Backfiller, HoleWatch
from bcx.tracker.stats import FeedStats
from bcx.tracker.writer import Writer

log = logging.getLogger(__name__)

ProtocolFactory = Callable[[Sequence[str]], FeedProtocol]

# Longest a blocking read lasts, so a stop request is seen promptly.
POLL = 0.25
# Parse errors (and frames with refused ticks) logged one by one per connection; after that
# only every LOG_EVERY-th.
LOG_FIRST = 10
LOG_EVERY = 1000
# Characters of a frame quoted in such a log line.
LOG_FRAME_CHARS = 200
READ_AHEAD = 65536
# First header byte of a final, unfragmented text or binary frame without extensions.
_WHOLE_DATA_FRAME = frozenset({0x81, 0x82})
_DATA_OPCODES = frozenset({ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT})


class OversizedFrame(Exception):
    """A data message over ``max_frame_bytes``: read past and thrown away, never held."""

    def __init__(self, size: int):
        super().__init__(f"frame of {size} bytes is over max_frame_bytes")
        self.size = size


class _CappedFrames(frame_buffer):
    """websocket-client's frame reader, except that a payload that would take the message
    over ``limit`` bytes is read and discarded in chunks instead of being joined in memory:
    a frame's length is whatever the server claims, up to 2**63."""

    def __init__(self, recv: Callable[[int], bytes], skip_utf8_validation: bool, limit: int,
                 held: Callable[[], int]):
        super().__init__(recv, skip_utf8_validation)
        self.limit = limit
        self.held = held  # bytes of a fragmented message already joined
        self.discarding = 0  # progress through the current discarded payload (reads time out)
        self.discarded = 0  # bytes discarded from the message being read

    def recv_strict(self, bufsize: int) -> bytes:
        # Header, length and mask come first (``clear()`` resets them per frame); only a data
        # frame's payload, read last, is ever discarded.
        if (bufsize <= self.limit - self.held() or self.header is None or self.length is None
                or self.mask_value is None or self.header[4] not in _DATA_OPCODES):
            return super().recv_strict(bufsize)
        while self.discarding < bufsize:
            self.discarding += len(self.recv(min(READ_AHEAD, bufsize - self.discarding)))
        self.discarding = 0
        self.discarded += bufsize
        return b""


class BufferedWebSocket(websocket.WebSocket):
    """websocket-client reads each frame's header, length and payload with separate
    ``recv`` calls; reading ahead 64 KiB at a time makes that one system call per many small
    frames (8.7 -> 3.8 us per Binance frame here; :meth:`next_frame` then takes 0.6 us).
    Messages over ``max_frame_bytes`` are skipped without being held (:class:`OversizedFrame`).
    """

    def __init__(self, max_frame_bytes: int, skip_utf8_validation: bool = True,
                 **options: Any) -> None:
        self._ahead = b""
        self._at = 0
        super().__init__(skip_utf8_validation=skip_utf8_validation, **options)
        self.frame_buffer: _CappedFrames = _CappedFrames(
            self._recv, skip_utf8_validation, max_frame_bytes, self._joined)

    def _joined(self) -> int:
        data = self.cont_frame.cont_data
        return len(data[1]) if data else 0

    def next_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next data, close, ping or pong frame. Whole unmasked
        data frames already read ahead are sliced out directly (the common case); anything
        else goes through websocket-client, which also answers pings and joins fragments."""
        ahead, at = self._ahead, self._at
        parser = self.frame_buffer
        if (len(ahead) - at >= 4 and ahead[at] in _WHOLE_DATA_FRAME and parser.header is None
                and not parser.recv_buffer and not self.cont_frame.recving_frames):
            length = ahead[at + 1]  # unmasked: 0-125, or 126 for a 16-bit length
            if length < 126:
                start, end = at + 2, at + 2 + length
            elif length == 126:
                start = at + 4
                end = start + int.from_bytes(ahead[at + 2:start], "big")
            else:
                start = end = len(ahead) + 1
            if end <= len(ahead):
                self._at = end
                return ahead[at] & 0x0F, ahead[start:end]
        opcode, frame = self.recv_data_frame(control_frame=True)
        if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY) and self.frame_buffer.discarded:
            size = self.frame_buffer.discarded + len(frame.data)
            self.frame_buffer.discarded = 0
            raise OversizedFrame(size)
        return opcode, frame.data

    def _recv(self, bufsize: int) -> bytes:
        if self._at >= len(self._ahead):
            # websocket-client leaves _recv and connect unannotated.
            data: bytes = super()._recv(READ_AHEAD)  # type: ignore[no-untyped-call]
            if len(data) <= bufsize:
                return data
            self._ahead, self._at = data, 0
        start = self._at
        self._at = min(start + bufsize, len(self._ahead))
        return self._ahead[start:self._at]


class Feed:
    """The connection loop of one exchange, run in its own thread."""

    def __init__(self, exchange: str, protocol: ProtocolFactory, url: str,
                 symbols: Sequence[str], config: TrackerConfig, writer: Writer,
                 stats: FeedStats | None = None, backfiller: Backfiller | None = None):
        self.exchange = exchange
        self.protocol = protocol
        self.url = url
        self.redact = Redactor.for_url(url)
        self.symbols = tuple(symbols)
        self.config = config
        self.writer = writer
        self.stats = stats or FeedStats(exchange)
        self.stop_event = threading.Event()
        self.backoff = Backoff(config.backoff_initial, config.backoff_max)
        self.gate = Gate(self.symbols, round(config.max_clock_skew * 1000))
        self.errors_this_connection = 0
        self.refusals_this_connection = 0
        self.working = False
        self.backfiller = backfiller
        self.holes = HoleWatch(exchange)
        self.thread = threading.Thread(target=self._run, name=f"feed-{exchange}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    # ------------------------------------------------------------------ reconnect loop
    def _run(self) -> None:
        first = True
        while not self.stop_event.is_set():
            if not first:
                self.stats.reconnects += 1
            first = False
            try:
                healthy = self._session()
            except Exception:  # noqa: BLE001 - nothing a server sends may end the loop
                log.exception("%s: connection loop failed", self.exchange)
                healthy = False
            if self.stop_event.is_set():
                break
            if healthy:
                self.backoff.reset()
            else:
                self._failed()
            delay = self.backoff.next()
            log.info("%s: reconnecting in %.2fs", self.exchange, delay)
            self.stop_event.wait(delay)

    def _failed(self) -> None:
        stats = self.stats
        stats.consecutive_failures += 1
        if stats.consecutive_failures >= self.config.feed_down_after and not stats.feed_down:
            stats.feed_down = True
            log.error("%s: feed down after %d failed connections (last error: %s)",
                      self.exchange, stats.consecutive_failures, stats.last_error)
            self.writer.publish_event(self._event(FIRING, (
                f"{self.exchange}: {stats.consecutive_failures} consecutive failed connections"
                f" (last error: {stats.last_error})")))

    def _working(self) -> None:
        """The connection delivers: the feed works again. Any frame is not proof enough: a
        venue greets and refuses a subscription with frames too, and counting those would
        reset the back-off on every attempt and never report the feed down."""
        self.working = True
        stats = self.stats
        stats.consecutive_failures = 0
        if stats.feed_down:
            stats.feed_down = False
            log.info("%s: feed back up", self.exchange)
            self.writer.publish_event(self._event(RESOLVED, f"{self.exchange}: feed back up"))

    def _event(self, state: str, message: str) -> TriggerEvent:
        """The feed_down report; a named tracker says which one in the message (the rule id
        stays ``feed_down:<exchange>``)."""
        if self.config.instance:
            message = f"tracker {self.config.instance}: {message}"
        return TriggerEvent(rule=f"feed_down:{self.exchange}", series=f"{self.exchange}:*",
                            state=state, kind="feed_down",
                            value=self.stats.consecutive_failures,
                            threshold=float(self.config.feed_down_after), message=message)

    # ------------------------------------------------------------------ one connection
    def _session(self) -> bool:
        """Connect, subscribe and read until the connection ends; True if it worked (see
        :meth:`_working`), so the back-off starts over."""
        protocol = self.protocol(self.symbols)
        url = protocol.connect_url(self.url)
        self.stats.url = shown = mask_url(url)  # served by /api/v1.0/health
        self.errors_this_connection = 0
        self.refusals_this_connection = 0
        ws = BufferedWebSocket(self.config.max_frame_bytes, enable_multithread=False)
        try:
            ws.connect(url, timeout=max(1.0, protocol.subscribe_deadline))  # type: ignore[no-untyped-call]
            for frame in protocol.subscribe_frames():
                ws.send(frame)
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            self._note_error(f"connect {shown}: {_describe(exc)}")
            _close(ws)
            return False
        log.info("%s: connected to %s", self.exchange, shown)
        self.working = False
        self.holes.new_connection()
        self.stats.connected = True
        self.stats.connected_since_ms = time.time_ns() // 1_000_000
        try:
            self._read(ws, protocol)
        except (websocket.WebSocketException, OSError) as exc:
            self._note_error(f"connection lost: {_describe(exc)}")
        finally:
            self.stats.connected = False
            _close(ws)
        return self.working

    def _read(self, ws: BufferedWebSocket, protocol: FeedProtocol) -> None:
        silence = self.config.silence_timeout
        ping_every = self.config.ping_interval
        stop = self.stop_event
        opened = last_data = last_ping = time.monotonic()
        # One fixed timeout: setting it per frame would cost a system call per frame.
        assert ws.sock is not None  # connected by _session
        ws.sock.settimeout(min(POLL, silence, ping_every or POLL))
        while not stop.is_set():
            try:
                opcode, data = ws.next_frame()
            except websocket.WebSocketTimeoutException:
                opcode, data = None, b""
            except OversizedFrame as exc:
                opcode, data = ABNF.OPCODE_TEXT, None
                self._count_frame()
                self._parse_error(str(exc))
            now = time.monotonic()
            if opcode == ABNF.OPCODE_TEXT or opcode == ABNF.OPCODE_BINARY:
                last_data = now
                if data is not None:
                    reconnect = self._frame(ws, protocol, opcode, data)
                    if reconnect:
                        self._note_error(f"reconnecting as the venue asks: {reconnect}")
                        return
                if not self.working and now - opened >= silence:
                    # Frames for a whole silence period and no tick (a quiet market with
                    # heartbeats): alive all the same.
                    self._working()
            elif opcode == ABNF.OPCODE_CLOSE:
                self._note_error(f"closed by the server ({_close_reason(data or b'')})")
                return
            elif now - last_data >= silence:
                # Only data frames count: a server that answers or sends pings but no data is
                # exactly the stall this watchdog exists for.
                self.stats.silences += 1
                self._note_error(f"silent for {silence:g}s")
                return
            if ping_every and now - last_ping >= ping_every:
                ws.ping()
                self.stats.pings += 1
                last_ping = now

    def _frame(self, ws: BufferedWebSocket, protocol: FeedProtocol, opcode: int,
               data: bytes) -> str | None:
        """Handle one data frame; returns why to reconnect when the venue asks for it."""
        received_ns = self._count_frame()
        stats = self.stats
        if opcode == ABNF.OPCODE_BINARY:
            self._parse_error(f"binary frame of {len(data)} bytes")
            return None
        if len(data) > self.config.max_frame_bytes:
            self._parse_error(f"frame of {len(data)} bytes is over max_frame_bytes")
            return None
        received_ms = received_ns // 1_000_000
        try:
            raw = data.decode("utf-8")
            parsed = protocol.parse(raw, received_ms)
        except (MalformedFrame, UnicodeDecodeError) as exc:
            self._parse_error(f"{exc}: {data[:LOG_FRAME_CHARS]!r}")
            return None
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not end the feed
            self._parse_error(f"adapter failed ({exc!r}): {data[:LOG_FRAME_CHARS]!r}")
            return None
        ticks = parsed.ticks
        if ticks:
            # The one place every adapter's ticks pass: nothing implausible reaches the writer.
            ticks, refused = self.gate.admit(ticks, received_ms)
            if refused:
                self._refused(refused, data)
        trades = parsed.trades
        if trades:
            trades, refused = self.gate.admit_trades(trades, received_ms)
            if refused:
                self._refused(refused, data)
        if ticks or trades:
            for tick in ticks:
                tick.received_ns = received_ns
            stats.ticks += len(ticks)
            items: Sequence[Tick | Trade] = ticks
            if trades:
                for trade in trades:
                    trade.received_ns = received_ns
                stats.trades += len(trades)
                items = [*ticks, *trades]
                if self.backfiller is not None:
                    for hole in self.holes.observe(trades):
                        self.backfiller.offer(hole)
            self.writer.submit(items)
            if not self.working:
                self._working()
        if parsed.gaps:
            stats.add_gaps(gap for gap in parsed.gaps if self.gate.ours(gap[0]))
        if parsed.replies:
            for reply in parsed.replies:
                ws.send(reply)
        if parsed.error:
            stats.venue_errors += 1
            self._note_error(f"venue error: {parsed.error}")
        return parsed.reconnect

    def _count_frame(self) -> int:
        """Count a data frame; returns its receipt time in ns."""
        received_ns = time.time_ns()
        self.stats.frames += 1
        self.stats.last_frame_ms = received_ns // 1_000_000
        return received_ns

    def _parse_error(self, what: str) -> None:
        self.stats.parse_errors += 1
        self.errors_this_connection += 1
        count = self.errors_this_connection
        if _worth_logging(count):
            log.warning("%s: unreadable frame skipped (%d this connection): %s",
                        self.exchange, count, what)

    def _refused(self, refused: list[Refusal], data: bytes) -> None:
        """Count what the gate refused in one frame; log it with the frame, rate-limited."""
        for refusal in refused:
            self.stats.reject(refusal.reason)
        self.refusals_this_connection += 1
        count = self.refusals_this_connection
        if _worth_logging(count):
            log.warning("%s: implausible ticks refused (frame %d this connection): %s: %r",
                        self.exchange, count,
                        "; ".join(f"{r.symbol}: {r.reason}: {r.detail}" for r in refused),
                        data[:LOG_FRAME_CHARS])

    def _note_error(self, what: str) -> None:
        self.stats.last_error = what = self.redact(what)
        log.warning("%s: %s", self.exchange, what)


def _worth_logging(count: int) -> bool:
    """The first LOG_FIRST of a kind of problem per connection are logged, then every
    LOG_EVERY-th: a venue sending garbage at full rate must not flood the log."""
    return count <= LOG_FIRST or count % LOG_EVERY == 0


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _close_reason(data: bytes) -> str:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        reason = data[2:].decode("utf-8", "replace")
        return f"code {code}" + (f": {reason}" if reason else "")
    return "no code"


def _close(ws: websocket.WebSocket) -> None:
    """Close without waiting long for the server's close frame: it may be the silent one."""
    with contextlib.suppress(websocket.WebSocketException, OSError):
        if ws.connected:
            ws.close(timeout=0.2)
    with contextlib.suppress(websocket.WebSocketException, OSError):
        ws.shutdown()
