"""Many live streams at once, cheaply: the web app under gunicorn as production runs it, and
SSE clients on raw loopback sockets read with one selector (no thread per client). Used by the
stream tests and bench/sse_bench.py."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
STREAM = "/api/v1.0/stream"


@contextmanager
def gunicorn(directory: Path, redis_url: str, mode: str = "standalone", workers: int = 1,
             **web: str) -> Iterator[str]:
    """The app under ``gunicorn -c web/gunicorn_conf.py`` on a free loopback port: its URL.
    Extra ``[web]`` keys come from ``web``."""
    port = free_port()
    conf = directory / "bcx.conf"
    lines = [f"{key} = {value}" for key, value in web.items()]
    conf.write_text(f"[redis]\nurl = {redis_url}\nmode = {mode}\n"
                    f"[web]\nbind = 127.0.0.1:{port}\nworkers = {workers}\n"
                    + "".join(line + "\n" for line in lines))
    log = (directory / "gunicorn.log").open("wb")
    env = dict(os.environ, BCX_CONF=str(conf),
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "web/gunicorn_conf.py", "web.wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or _answers(url), timeout=30,
                 message="gunicorn to answer")
        assert process.poll() is None, (directory / "gunicorn.log").read_text()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/api/v1.0/openapi.json", timeout=2)
    except requests.RequestException:
        return False
    return True


class RawStream:
    """One SSE client on a plain socket: sends the request, then collects what arrives."""

    def __init__(self, url: str, query: str = "", timeout: float = 10.0):
        host, _, port = url.removeprefix("http://").partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.sendall(f"GET {STREAM}{query} HTTP/1.1\r\nHost: {host}\r\n"
                          f"Accept: text/event-stream\r\n\r\n".encode())
        self.data = b""
        self.status = 0
        self.headers: dict[str, str] = {}

    def read_head(self, timeout: float = 10.0) -> int:
        """Reads the status line and headers; the status code."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.data:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed before the headers: {self.data!r}")
            self.data += chunk
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {name.strip().lower(): value.strip()
                        for name, _, value in (line.partition(":") for line in lines)}
        return self.status

    def close(self) -> None:
        self.sock.close()


def open_streams(url: str, count: int, query: str = "") -> list[RawStream]:
    """``count`` streams, each answered 200 and past its ``: connected`` comment."""
    streams = []
    try:
        for _ in range(count):
            stream = RawStream(url, query)
            streams.append(stream)
            assert stream.read_head() == 200, stream.data
        wait_until_all(streams, b": connected")
    except BaseException:
        close_all(streams)
        raise
    return streams


def wait_until_all(streams: Iterable[RawStream], marker: bytes,
                   timeout: float = 30.0) -> dict[RawStream, float]:
    """Reads every stream until its data holds ``marker``; when each one got it
    (time.monotonic()). Fails after ``timeout`` seconds naming how many never did."""
    streams = list(streams)
    arrived: dict[RawStream, float] = {}
    selector = selectors.DefaultSelector()
    for stream in streams:
        if marker in stream.data:
            arrived[stream] = time.monotonic()
        else:
            stream.sock.setblocking(False)
            selector.register(stream.sock, selectors.EVENT_READ, stream)
    deadline = time.monotonic() + timeout
    try:
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                stream = key.data
                try:
                    chunk = stream.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(stream.sock)
                    continue
                stream.data += chunk
                if marker in stream.data:
                    arrived[stream] = time.monotonic()
                    selector.unregister(stream.sock)
    finally:
        selector.close()
        for stream in streams:
            stream.sock.setblocking(True)
    missing = len(streams) - len(arrived)
    assert not missing, f"{missing} streams never received {marker!r}"
    return arrived


def close_all(streams: Iterable[RawStream]) -> None:
    for stream in streams:
        stream.close()
