"""`make run`'s launcher: a private redis-server when the configured one is unreachable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import free_port

PROBE = ("import os, redis; r = redis.Redis.from_url(os.environ['BCX_REDIS_URL']); "
         "r.set('probe', 'written through the private server')")


def test_unreachable_redis_gets_a_private_server_with_aof(tmp_path: Path):
    port = free_port()
    config = tmp_path / "bcx.conf"
    config.write_text(f"[redis]\nurl = redis://127.0.0.1:{port}/0\n")
    procfile = tmp_path / "Procfile"
    procfile.write_text(f'probe: exec {sys.executable} -c "{PROBE}"\n')
    done = subprocess.run([sys.executable, "-m", "bcx.devstack", "--config", str(config),
                           "--procfile", str(procfile), "--var", str(tmp_path / "var")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"started a private redis-server at redis://127.0.0.1:{port}/0" in done.stderr
    aof = b"".join(path.read_bytes()
                   for path in (tmp_path / "var" / "redis").rglob("*.aof*") if path.is_file())
    assert b"written through the private server" in aof
    # The private server is stopped with the stack.
    probe = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                           text=True)
    assert "PONG" not in probe.stdout


def test_an_empty_procfile_is_refused(tmp_path: Path):
    config = tmp_path / "bcx.conf"
    config.write_text("")
    procfile = tmp_path / "Procfile"
    procfile.write_text("# nothing yet\n")
    done = subprocess.run([sys.executable, "-m", "bcx.devstack", "--config", str(config),
                           "--procfile", str(procfile), "--var", str(tmp_path / "var")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "names no component" in done.stderr


# Run under the stack: an unauthenticated client is refused; BCX_REDIS_URL gets in.
AUTH_PROBE = """\
import os, socket
from urllib.parse import urlsplit
import redis
url = os.environ["BCX_REDIS_URL"]
parts = urlsplit(url)
with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
    sock.sendall(b"PING\\r\\n")
    anonymous = sock.recv(200).decode().strip()
redis.Redis.from_url(url).set("probe", "anonymous: " + anonymous)
"""


def test_the_private_server_requires_the_generated_password(tmp_path: Path):
    port = free_port()
    config = tmp_path / "bcx.conf"
    config.write_text(f"[redis]\nurl = redis://127.0.0.1:{port}/0\n")
    probe = tmp_path / "probe.py"
    probe.write_text(AUTH_PROBE)
    procfile = tmp_path / "Procfile"
    procfile.write_text(f"probe: exec {sys.executable} {probe}\n")
    var = tmp_path / "var"
    done = subprocess.run([sys.executable, "-m", "bcx.devstack", "--config", str(config),
                           "--procfile", str(procfile), "--var", str(var)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    secret = (var / "redis" / "password").read_text().strip()
    assert len(secret) >= 32
    for name in ("password", "redis.conf"):
        assert (var / "redis" / name).stat().st_mode & 0o777 == 0o600
    # The password is in the generated redis.conf, never in a log line or on a command line.
    assert secret not in done.stdout + done.stderr
    aof = b"".join(path.read_bytes()
                   for path in (var / "redis").rglob("*.aof*") if path.is_file())
    assert b"anonymous: -NOAUTH" in aof, aof


def test_the_password_is_made_once_and_kept(tmp_path: Path):
    from bcx.devstack import password

    first = password(tmp_path)
    assert password(tmp_path) == first
    assert (tmp_path / "password").stat().st_mode & 0o777 == 0o600


def test_ctrl_c_stops_the_stack_and_exits_0(tmp_path: Path, redis_url: str):
    """SIGINT (Ctrl-C) stops every component; a clean stop is exit status 0, not 130."""
    import signal
    import time

    config = tmp_path / "bcx.conf"
    config.write_text(f"[redis]\nurl = {redis_url}\n")
    ready = tmp_path / "ready"
    procfile = tmp_path / "Procfile"
    procfile.write_text(f"sleeper: exec {sys.executable} -c \"import pathlib, time; "
                        f"pathlib.Path('{ready}').touch(); time.sleep(600)\"\n")
    stack = subprocess.Popen([sys.executable, "-m", "bcx.devstack", "--config", str(config),
                              "--procfile", str(procfile), "--var", str(tmp_path / "var")],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and stack.poll() is None:
        time.sleep(0.05)
    assert ready.exists()
    stack.send_signal(signal.SIGINT)
    _, err = stack.communicate(timeout=60)
    assert stack.returncode == 0, err
    assert "stack stopped" in err
