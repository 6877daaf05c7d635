"""The tracker's feed health: reconnects after closes and silences, unreadable frames counted
and skipped, pings answered, sequence gaps counted, feed_down events published and resolved."""

from __future__ import annotations

import json
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from websocket import ABNF

from bcx.events import FIRING, RESOLVED, TriggerEvent
from bcx.keys import Keys
from bcx.replay import ReplayServer
from bcx.tracker.feed import BufferedWebSocket, OversizedFrame
from bcx.tracker.run import Tracker, tracker_client
from tests import trackerkit
from tests.support import free_port, wait_for

COINBASE = trackerkit.COINBASE
PRODUCTS = trackerkit.COINBASE_PRODUCTS
# Ticker frames in the Coinbase recording: each is one tick.
TICKERS = sum(1 for raw in trackerkit.session_frames("coinbase_ticker")
              if json.loads(raw).get("type") == "ticker")
keys = Keys("bcx")


@pytest.fixture
def start(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Tracker]]:
    """``start(url, **tracker settings)``: a Coinbase tracker on ``url``, stopped at teardown."""
    trackers: list[Tracker] = []

    def run(url: str, **settings: object) -> Tracker:
        config = trackerkit.tracker_config(tmp_path, redis_url, {"coinbase": (url, PRODUCTS)},
                                           **settings)
        tracker = Tracker(config, tracker_client(config))
        trackers.append(tracker)
        tracker.start()
        return tracker

    yield run
    for tracker in trackers:
        tracker.stop()


def subscribes(server: ReplayServer, connection: int) -> list[str]:
    return [raw for number, raw in server.received
            if number == connection and json.loads(raw).get("type") == "subscribe"]


@pytest.mark.parametrize("abrupt", [True, False], ids=["dropped-1006", "closed-1000"])
def test_server_closing_mid_stream_makes_the_tracker_reconnect_and_resubscribe(
        start: Callable[..., Tracker], replay: Callable[..., ReplayServer],
        abrupt: bool) -> None:
    server = replay(close_after=50, abrupt=abrupt)
    tracker = start(server.url)
    stats = tracker.stats[0]
    wait_for(lambda: server.connections >= 2 and subscribes(server, 1),
             message="a second connection that subscribes again")
    assert subscribes(server, 1) == subscribes(server, 0)
    wait_for(lambda: stats.ticks >= TICKERS + 1, message="the second connection's ticks")
    assert stats.reconnects >= 1
    assert stats.parse_errors == 0


def test_silent_server_is_dropped_by_the_watchdog(start: Callable[..., Tracker],
                                                  replay: Callable[..., ReplayServer]) -> None:
    server = replay(silent_after=20)
    tracker = start(server.url, silence_timeout="500ms")
    stats = tracker.stats[0]
    wait_for(lambda: server.connections >= 2, message="a reconnect after the silence")
    assert stats.silences >= 1
    assert "silent" in stats.last_error
    wait_for(lambda: stats.connected and stats.ticks >= TICKERS, message="the healthy replay")


def test_garbage_binary_and_oversized_frames_are_counted_and_skipped(
        start: Callable[..., Tracker], replay: Callable[..., ReplayServer],
        r: redis.Redis) -> None:
    oversized = json.dumps({"type": "ticker", "padding": "x" * 2000})
    huge = json.dumps({"type": "ticker", "padding": "y" * 300_000})  # a 64-bit length
    server = replay(inject={10: ["this is not json", b"\x00\x01binary", oversized,
                                 '{"type":"ticker","product_id":"SKL-USD"}'], 20: [huge]})
    tracker = start(server.url, max_frame_bytes=1024)
    stats = tracker.stats[0]
    wait_for(lambda: stats.ticks == TICKERS and tracker.writer.written == TICKERS,
             message="every recorded tick despite the bad frames")
    assert stats.parse_errors == 5
    assert server.connections == 1 and stats.connected
    wait_for(lambda: r.hget(keys.tracker_stats("coinbase"), "parse_errors") == "5",
             message="parse errors in the stats hash")


def test_an_oversized_frame_is_skipped_without_being_held_in_memory() -> None:
    limit, size = 1 << 20, 64 << 20
    ticker = b'{"type":"ticker"}'
    server_end, client_end = socket.socketpair()
    ws = BufferedWebSocket(limit, enable_multithread=False)
    ws.sock, ws.connected = client_end, True
    client_end.settimeout(10)

    def send() -> None:
        # One unmasked text frame announcing 64 MiB (sent from one reused 64 KiB block),
        # then a small one.
        server_end.sendall(bytes((0x81, 127)) + size.to_bytes(8, "big"))
        block = b"x" * 65536
        for _ in range(size // len(block)):
            server_end.sendall(block)
        server_end.sendall(bytes((0x81, len(ticker))) + ticker)

    sender = threading.Thread(target=send, daemon=True)
    tracemalloc.start()
    try:
        sender.start()
        with pytest.raises(OversizedFrame) as skipped:
            ws.next_frame()
        assert ws.next_frame() == (ABNF.OPCODE_TEXT, ticker)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sender.join(10)
        server_end.close()
        client_end.close()
    assert skipped.value.size == size
    assert peak < 4 * limit


def test_a_refused_subscription_backs_off_and_reports_the_feed_down(
        start: Callable[..., Tracker], r: redis.Redis) -> None:
    # Each connection greets, refuses the subscription and closes: no connection works,
    # though every one delivers frames.
    def script(conn: object, number: int) -> None:
        conn.send('{"type":"info","note":"hello"}')
        conn.recv(timeout=5)
        conn.send('{"type":"error","message":"Failed to subscribe",'
                  '"reason":"SKL-USD is not a valid product"}')
        conn.close()

    with trackerkit.scripted(script) as server:
        tracker = start(server.url, feed_down_after=3)
        stats = tracker.stats[0]
        wait_for(lambda: r.xlen(keys.events_stream), message="a feed_down event")
        assert stats.feed_down and stats.consecutive_failures >= 3
        assert stats.venue_errors >= 3 and server.connections >= 3
        assert tracker.feed("coinbase").backoff.failures >= 3


def test_a_server_that_only_pings_is_dropped_by_the_watchdog(
        start: Callable[..., Tracker]) -> None:
    # Pings come faster than a read times out: only the lack of data can reveal the stall.
    def script(conn: object, number: int) -> None:
        conn.recv(timeout=5)
        pause = threading.Event()
        while number == 0:
            conn.ping()
            pause.wait(0.05)
        conn.recv(timeout=30)

    with trackerkit.scripted(script) as server:
        tracker = start(server.url, silence_timeout="500ms")
        wait_for(lambda: server.connections >= 2, message="a reconnect after the silence")
        assert tracker.stats[0].silences >= 1


def test_websocket_pings_from_the_server_are_answered(start: Callable[..., Tracker]) -> None:
    answered = []

    def script(conn: object, number: int) -> None:
        conn.recv(timeout=5)  # the subscription
        answered.append(conn.ping(b"are you there").wait(5))
        conn.recv(timeout=30)

    with trackerkit.scripted(script) as server:
        start(server.url)
        wait_for(lambda: answered, message="the ping's fate")
    assert answered == [True]


def test_tracker_pings_a_quiet_server(start: Callable[..., Tracker]) -> None:
    def script(conn: object, number: int) -> None:
        conn.recv(timeout=5)
        conn.send('{"type":"heartbeat","product_id":"SKL-USD"}')
        conn.recv(timeout=30)

    with trackerkit.scripted(script) as server:
        tracker = start(server.url, ping_interval="100ms")
        # Observed where it matters: the venue received them (websockets answers with pongs).
        wait_for(lambda: server.pings >= 2, message="pings received by the quiet server")
        assert tracker.stats[0].pings >= server.pings


def test_sequence_gaps_are_counted_per_series(start: Callable[..., Tracker],
                                             replay: Callable[..., ReplayServer],
                                             r: redis.Redis, tmp_path: Path) -> None:
    # Drop three SKL-USD trades (their match frames) from the recording: their trade ids
    # become gaps. (Matches carry every trade, so gaps are counted on them, not on tickers.)
    lines = COINBASE.read_text().splitlines()
    skl = [i for i, line in enumerate(lines) if '\\"match\\"' in line
           and '\\"product_id\\":\\"SKL-USD\\"' in line]
    dropped = set(skl[3:6])
    session = tmp_path / "coinbase_gaps.session.jsonl"
    session.write_text("\n".join(line for i, line in enumerate(lines) if i not in dropped))
    expected = _trade_id_gaps(session, "SKL-USD")
    assert expected >= 3
    tracker = start(replay(session).url)
    wait_for(lambda: r.hget(keys.gaps("coinbase"), "SKL-USD") == str(expected),
             message=f"{expected} gaps on SKL-USD")
    assert tracker.stats[0].gaps == expected


def _trade_id_gaps(session: Path, product: str) -> int:
    """Missed trade ids between consecutive trades (matches) of ``product``, from the file
    alone."""
    ids = []
    for line in session.read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] == "recv":
            msg = json.loads(entry["raw"])
            if (msg.get("type") in ("match", "last_match")
                    and msg.get("product_id") == product):
                ids.append(msg["trade_id"])
    return sum(b - a - 1 for a, b in zip(ids, ids[1:], strict=False) if b > a + 1)


def test_failed_connections_publish_feed_down_then_resolved(
        start: Callable[..., Tracker], replay: Callable[..., ReplayServer],
        r: redis.Redis) -> None:
    port = free_port()  # nothing listens here yet
    tracker = start(f"ws://127.0.0.1:{port}", feed_down_after=3)
    stats = tracker.stats[0]

    def events() -> list[TriggerEvent]:
        return [TriggerEvent.from_json(fields["event"])
                for _, fields in r.xrange(keys.events_stream)]

    down = wait_for(events, message="a feed_down event")
    assert [(e.rule, e.kind, e.state, e.series) for e in down] == [
        ("feed_down:coinbase", "feed_down", FIRING, "coinbase:*")]
    assert stats.feed_down and stats.consecutive_failures >= 3
    replay(port=port)
    wait_for(lambda: len(events()) == 2, message="the resolved event")
    assert events()[1].state == RESOLVED and events()[1].rule == "feed_down:coinbase"
    assert not stats.feed_down and stats.consecutive_failures == 0


def test_frames_of_every_length_and_fragmented_messages_are_read(
        start: Callable[..., Tracker]) -> None:
    def ticker(trade_id: int, padding: int = 0) -> str:
        return json.dumps({"type": "ticker", "product_id": "SKL-USD", "price": "0.7902",
                           "best_bid": "0.7901", "best_ask": "0.7903", "trade_id": trade_id,
                           "time": f"2021-04-17T16:43:3{trade_id}.000000Z", "pad": "x" * padding})

    def script(conn: object, number: int) -> None:
        conn.recv(timeout=5)
        conn.send(ticker(1))                       # 7-bit length
        conn.send(ticker(2, padding=1000))         # 16-bit length
        conn.send(ticker(3, padding=200_000))      # 64-bit length, beyond the read-ahead
        text = ticker(4)
        conn.send([text[:10], text[10:50], text[50:]])  # one message in three fragments
        conn.recv(timeout=30)

    with trackerkit.scripted(script) as server:
        tracker = start(server.url)
        stats = tracker.stats[0]
        wait_for(lambda: tracker.writer.written == 4, message="four ticks")
    assert stats.parse_errors == 0 and stats.frames == 4


def test_a_venue_asking_for_a_reconnect_gets_a_fresh_subscription(
        redis_url: str, tmp_path: Path, replay: Callable[..., ReplayServer]) -> None:
    ask = '{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}'
    server = replay("bitfinex_ticker", inject={30: [ask]})
    symbols = ["ETH2X-ETH", "REQ-USD", "GTX-USDT", "CHZ-USDT", "KNC-BTC", "ETH-JPY", "ZRX-ETH",
               "LRC-BTC"]
    config = trackerkit.tracker_config(tmp_path, redis_url, {"bitfinex": (server.url, symbols)})
    tracker = Tracker(config, tracker_client(config))
    tracker.start()
    try:
        wait_for(lambda: server.connections >= 2 and len(server.received) > len(symbols),
                 message="a second connection after the venue's 20051")
        first = [raw for number, raw in server.received if number == 0]
        wait_for(lambda: [raw for number, raw in server.received if number == 1] == first,
                 message="the same subscriptions sent again")
        assert tracker.stats[0].parse_errors == 0
    finally:
        tracker.stop()
