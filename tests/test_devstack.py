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
