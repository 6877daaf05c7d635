"""Test support: a private redis-server process, free ports and waiting on conditions."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

T = TypeVar("T")


def session_entries(path: Path) -> list[dict[str, Any]]:
    """The lines of a recorded session (``*.session.jsonl``): connect, send and recv entries."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def recv_frames(path: Path) -> list[tuple[int, str]]:
    """(recorded receive time in ms, raw text) of every frame the venue sent."""
    return [(int(entry["ts"] * 1000), entry["raw"]) for entry in session_entries(path)
            if entry["dir"] == "recv"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as exc:  # noqa: BLE001 - the condition may fail until it holds
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


class RedisServer:
    """A redis-server on a free loopback port with its own directory. It can be stopped and
    started again on the same port, keeping its data when persistence is on."""

    def __init__(self, directory: Path, port: int | None = None, appendonly: bool = False,
                 unixsocket: Path | None = None):
        binary = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs "
                               "it with apt-get (Debian package redis-server)")
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.unixsocket = unixsocket
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--daemonize", "no", "--protected-mode", "yes",
                "--logfile", str(self.directory / "redis.log")]
        if self.unixsocket is not None:
            args += ["--unixsocket", str(self.unixsocket), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        client = self.client()
        try:
            wait_for(client.ping, timeout=15, message=f"redis-server on port {self.port}")
        except AssertionError:
            self.stop()
            log = (self.directory / "redis.log")
            raise RuntimeError("redis-server did not start: "
                               + (log.read_text()[-2000:] if log.exists() else "no log")) from None
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
