"""systemd readiness and watchdog notifications ride on the heartbeat."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bcx import sdnotify
from bcx.heartbeat import Heartbeat


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_a_heartbeat_that_reaches_redis_notifies_systemd(r, keys, notify_socket):
    Heartbeat(r, keys, "tracker", ttl=30).beat()
    assert notify_socket.recv(1024) == b"READY=1\nWATCHDOG=1"


def test_a_heartbeat_that_fails_does_not_notify(keys, notify_socket):
    import redis

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        Heartbeat(dead, keys, "tracker", ttl=30).beat()
    notify_socket.settimeout(0.2)
    with pytest.raises(TimeoutError):
        notify_socket.recv(1024)


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.alive() is False


def test_an_unreachable_socket_never_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "absent.sock"))
    assert sdnotify.alive() is False
