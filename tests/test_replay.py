"""``bcx replay`` as a client sees it: a real websocket on loopback, driven by websocket-client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websocket

from bcx import exchanges
from bcx.replay import ReplayServer, load_session
from tests import trackerkit
from tests.support import session_entries, wait_for
from tests.test_exchanges import RECORDED_SYMBOLS

DATA = Path(__file__).parent / "data"
SESSIONS = ["coinbase_ticker", "binance_bookticker", "bitfinex_ticker", "kraken_ticker",
            "kraken_trade"]


def recorded(session: str) -> tuple[str, list[str], list[str]]:
    """(request path, frames the client sent, frames the venue sent) of a recording."""
    path, sends, recvs = "/", [], []
    for entry in session_entries(DATA / f"{session}.session.jsonl"):
        if entry["dir"] == "connect":
            parts = urlsplit(entry["url"])
            path = parts.path + (f"?{parts.query}" if parts.query else "") or "/"
        elif entry["dir"] == "send":
            sends.append(entry["raw"])
        else:
            recvs.append(entry["raw"])
    return path, sends, recvs


def connect(server: ReplayServer, path: str = "/") -> websocket.WebSocket:
    return websocket.create_connection(server.url + path, timeout=10)


@pytest.mark.parametrize("session", SESSIONS)
def test_subscribed_client_receives_exactly_the_recorded_frames(replay, session: str) -> None:
    server = replay(session)
    path, sends, recvs = recorded(session)
    ws = connect(server, path)
    try:
        for frame in sends:
            ws.send(frame)
        assert [ws.recv() for _ in recvs] == recvs
    finally:
        ws.close()


def test_greeting_comes_before_the_subscription(replay) -> None:
    server = replay("kraken_ticker")
    ws = connect(server)
    try:
        assert json.loads(ws.recv())["event"] == "systemStatus"
    finally:
        ws.close()


@pytest.mark.parametrize("session, invalid, valid_index", [
    ("coinbase_ticker", '{"type":"subscribe","product_ids":["NOPE"],"channels":["ticker"]}', 0),
    ("bitfinex_ticker", '{"event":"subscribe","channel":"ticker","symbol":"XYZ"}', 1),
    ("kraken_ticker", '{"event":"subscribe","pair":["XBT"],"subscription":{"name":"ticker"}}', 0),
    ("binance_bookticker", '{"method":"SUBSCRIBE","params":["zilusdt@bogus"],"id":3}', 0),
])
def test_invalid_subscribe_gets_the_venue_error_and_no_data(replay, session: str, invalid: str,
                                                           valid_index: int) -> None:
    server = replay(session)
    _, sends, recvs = recorded(session)
    greeting = len(server.session.greeting)
    ws = connect(server)
    try:
        assert [ws.recv() for _ in range(greeting)] == recvs[:greeting]
        ws.send(invalid)
        error = json.loads(ws.recv())
        assert error.get("type") == "error" or error.get("event") == "error" or error.get(
            "status") == "error" or error.get("code") == 2
        # Nothing flowed after the refusal: the next frame answers a valid subscription.
        valid = sends[valid_index] if sends else (
            '{"method":"SUBSCRIBE","params":["zilusdt@bookTicker"],"id":4}')
        ws.send(valid)
        following = ws.recv()
        if not sends:
            assert json.loads(following) == {"result": None, "id": 4}
            following = ws.recv()
        assert following == recvs[greeting]
    finally:
        ws.close()


def test_strict_replay_refuses_symbols_not_in_the_recording(replay) -> None:
    server = replay("coinbase_ticker", strict_symbols=True)
    ws = connect(server)
    try:
        ws.send('{"type":"subscribe","product_ids":["BTC-USD"],"channels":["ticker"]}')
        assert json.loads(ws.recv())["reason"] == "BTC-USD is not a valid product"
    finally:
        ws.close()


def test_binance_streams_in_the_url_are_checked(replay) -> None:
    server = replay("binance_bookticker")
    ws = connect(server, "/stream?streams=zilusdt@nonsense")
    try:
        assert json.loads(ws.recv())["code"] == 2
    finally:
        ws.close()


def test_pings_are_answered(replay) -> None:
    server = replay("kraken_ticker", silent_after=0)
    ws = connect(server)
    try:
        ws.recv()  # systemStatus
        ws.send('{"event":"ping","reqid":9}')
        assert json.loads(ws.recv()) == {"event": "pong", "reqid": 9}
    finally:
        ws.close()


def coinbase_times(frames: list[str]) -> list[float]:
    return [datetime.fromisoformat(json.loads(raw)["time"].replace("Z", "+00:00")).timestamp()
            for raw in frames if '"time"' in raw]


def test_loop_repeats_with_times_shifted_to_now(replay) -> None:
    server = replay("coinbase_ticker", loop=True)
    _, sends, recvs = recorded("coinbase_ticker")
    ws = connect(server)
    try:
        ws.send(sends[1])
        frames = [ws.recv() for _ in range(3 * len(recvs))]
    finally:
        ws.close()
    now = time.time()
    # The stalest recorded ticker was 107 s old; three rounds of a 30 s recording follow.
    assert all(now - 300 < t < now + 300 for t in coinbase_times(frames))
    rounds = [coinbase_times(frames[i * len(recvs):(i + 1) * len(recvs)]) for i in range(3)]
    # Each round is the recording again, moved forward by at least the recording's length.
    span = server.session.body[-1].ts - server.session.body[0].ts
    for earlier, later in zip(rounds, rounds[1:], strict=False):
        shifts = {round(b - a, 3) for a, b in zip(earlier, later, strict=True)}
        assert len(shifts) == 1 and shifts.pop() >= span
    assert [json.loads(f).get("trade_id") for f in frames[len(recvs):2 * len(recvs)]] == [
        json.loads(f).get("trade_id") for f in recvs]


def test_loop_keeps_bitfinex_sequence_numbers_contiguous(replay) -> None:
    server = replay("bitfinex_ticker", loop=True)
    _, sends, recvs = recorded("bitfinex_ticker")
    ws = connect(server)
    try:
        for frame in sends:
            ws.send(frame)
        frames = [ws.recv() for _ in range(1 + 2 * (len(recvs) - 1))]
    finally:
        ws.close()
    seqs = [int(raw[raw.rindex(",") + 1:-1]) for raw in frames if raw.startswith("[")]
    one_round = [int(raw[raw.rindex(",") + 1:-1]) for raw in recvs if raw.startswith("[")]
    assert seqs[:len(one_round)] == one_round
    assert seqs[len(one_round)] == one_round[-1] + 1
    assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False))


def test_close_after_drops_the_connection_and_the_next_one_is_healthy(replay) -> None:
    server = replay("kraken_ticker", close_after=5)
    _, sends, recvs = recorded("kraken_ticker")
    ws = connect(server)
    ws.send(sends[0])
    got = []
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        while True:
            got.append(ws.recv())
            if got[-1] == "":
                raise websocket.WebSocketConnectionClosedException("closed")
    ws.close()
    assert [g for g in got if g] == recvs[:6]  # the greeting and 5 replayed frames
    again = connect(server)
    try:
        again.send(sends[0])
        assert [again.recv() for _ in recvs] == recvs
    finally:
        again.close()
    assert server.connections == 2
    assert [n for n, _ in server.received] == [0, 1]


def test_silent_after_keeps_the_socket_open_and_sends_nothing(replay) -> None:
    server = replay("kraken_ticker", silent_after=3)
    _, sends, recvs = recorded("kraken_ticker")
    ws = connect(server)
    try:
        ws.send(sends[0])
        assert [ws.recv() for _ in range(4)] == recvs[:4]
        ws.send('{"event":"ping","reqid":1}')
        # The pong is the next frame: no recorded frame was sent in between.
        assert json.loads(ws.recv()) == {"event": "pong", "reqid": 1}
        assert ws.connected
    finally:
        ws.close()


def test_injected_garbage_binary_and_oversized_frames_arrive_in_place(replay) -> None:
    big = "x" * 2_000_000
    server = replay("kraken_ticker", inject={2: ["garbage{", b"\x00\xffbin", big]})
    _, sends, recvs = recorded("kraken_ticker")
    ws = connect(server)
    try:
        ws.send(sends[0])
        received = [ws.recv_data() for _ in range(7)]
    finally:
        ws.close()
    opcodes = [opcode for opcode, _ in received]
    payloads = [payload for _, payload in received]
    assert payloads[:3] == [r.encode() for r in recvs[:3]]
    assert payloads[3:6] == [b"garbage{", b"\x00\xffbin", big.encode()]
    assert opcodes[3:6] == [websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY,
                            websocket.ABNF.OPCODE_TEXT]
    assert payloads[6] == recvs[3].encode()


def test_paced_replay_follows_the_recorded_order(replay) -> None:
    server = replay("kraken_trade", speed=50)
    _, sends, recvs = recorded("kraken_trade")
    ws = connect(server)
    try:
        ws.send(sends[0])
        assert [ws.recv() for _ in range(20)] == recvs[:20]
    finally:
        ws.close()


def test_session_exchange_is_inferred_from_the_file_name() -> None:
    assert {load_session(DATA / f"{s}.session.jsonl").exchange for s in SESSIONS} == {
        "coinbase", "binance", "bitfinex", "kraken"}


def test_cli_prints_the_url_first_and_exits_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bcx.cli", "replay", str(DATA / "kraken_ticker.session.jsonl"),
         "--speed", "0", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:")
        ws = wait_for(lambda: websocket.create_connection(url, timeout=10),
                      message="replay accepting connections")
        try:
            assert json.loads(ws.recv())["event"] == "systemStatus"
        finally:
            ws.close()
        process.terminate()
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


# --------------------------------------------------------------------------- trade channels


def subscribed_as_the_adapter(server: ReplayServer, session: str) -> tuple[list[str], Any]:
    """Connect and subscribe the way the tracker's adapter does (trade channels included) to
    the symbols the recording carries; returns the frames of one replay and the adapter."""
    protocol = exchanges.get(session.split("_")[0])(sorted(server.session.symbols))
    url = urlsplit(protocol.connect_url(server.url))
    ws = connect(server, (url.path or "/") + (f"?{url.query}" if url.query else ""))
    try:
        for frame in protocol.subscribe_frames():
            ws.send(frame)
        frames = [ws.recv() for _ in recorded(session)[2]]
    finally:
        ws.close()
    return frames, protocol


def native_names(session: str) -> dict[str, str]:
    return {normal: name for name, normal in RECORDED_SYMBOLS[session.split("_")[0]].items()}


@pytest.mark.parametrize("session", trackerkit.TRADE_SESSIONS)
def test_trade_subscriptions_are_accepted_and_their_frames_replayed(replay,
                                                                    session: str) -> None:
    server = replay(session, strict_symbols=True)
    frames, protocol = subscribed_as_the_adapter(server, session)
    assert frames == recorded(session)[2]
    trades = [t for raw in frames for t in protocol.parse(raw, 0).trades]
    native = native_names(session)
    assert {(native[t.symbol], t.id): (t.ms, t.price, t.size, t.side) for t in trades} == \
        trackerkit.expected_trades(session)


@pytest.mark.parametrize("session", trackerkit.TRADE_SESSIONS)
def test_a_looping_replay_shifts_trade_times_to_now(replay, session: str) -> None:
    server = replay(session, loop=True)
    frames, protocol = subscribed_as_the_adapter(server, session)
    trades = [t for raw in frames for t in protocol.parse(raw, 0).trades]
    expected = trackerkit.expected_trades(session)
    native = native_names(session)
    # Kraken's ids are the trade times themselves, so there trades are matched by order.
    pairs = (zip(trades, [expected[(native[t.symbol], t.id)] for t in trades], strict=True)
             if session != "kraken_trade" else
             zip(sorted(trades, key=lambda t: t.ms), sorted(expected.values()), strict=True))
    shifts = {t.ms - value[0] for t, value in pairs}
    assert len(shifts) == 1
    shift = shifts.pop()
    assert abs(server.session.body[0].ts * 1000 + shift - time.time() * 1000) < 300_000
