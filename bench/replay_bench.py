"""The replay server's own send rate at speed 0, looping a recording, with a client that only
drains the socket (so the figure is the server's ceiling, not a websocket client's).

    .venv/bin/python bench/replay_bench.py [--frames 1000000] [--session binance_bookticker]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import time

from common import ROOT

from bcx.replay import ReplayServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--session", default="binance_bookticker")
    args = parser.parse_args()
    session = ROOT / "tests" / "data" / f"{args.session}.session.jsonl"
    server = ReplayServer(session, speed=0, loop=True)
    port = int(server.start().rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            key = base64.b64encode(os.urandom(16)).decode()
            # A bare handshake naming the recorded streams: Binance subscribes by URL.
            path = "/stream?streams=zilusdt@bookTicker" if "binance" in args.session else "/"
            sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            for frame in server.session.sends:
                sock.sendall(_masked_text(frame))
            started, received = time.perf_counter(), 0
            while server.frames_sent < args.frames:
                received += len(sock.recv(1 << 20))
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
    print(f"replay send rate: {server.frames_sent / elapsed:,.0f} frames/s "
          f"({server.frames_sent:,} frames, {received / 1e6:.1f} MB in {elapsed:.2f} s, "
          f"session {args.session}, times rewritten each round)")


def _masked_text(text: str) -> bytes:
    """A client text frame (clients must mask; a zero mask keeps the payload as is)."""
    payload = text.encode()
    size = len(payload)
    length = bytes((0x80 | size,)) if size < 126 else bytes((0x80 | 126,)) + size.to_bytes(2, "big")
    return b"\x81" + length + b"\x00\x00\x00\x00" + payload


if __name__ == "__main__":
    main()
