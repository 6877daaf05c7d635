"""``make run``: start every component under honcho, with a private redis-server when the
configured Redis cannot be reached (data under ./var, AOF on, a generated password)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

from bcx import config as configmod
from bcx.redisconn import connect
from bcx.secrets import Redactor, install_log_filter

log = logging.getLogger("bcx.devstack")
PRIVATE_PORT = 6379
# honcho's exit status once it has stopped every process on our SIGINT/SIGTERM: 0, or that of
# a component ended by the signal (128 + signal number, or -signal).
STOPPED_CODES = frozenset({0, 130, 143, -signal.SIGINT, -signal.SIGTERM})


def control_socket_args(existing: str, var: Path) -> str:
    """gunicorn's command-line options with a control socket private to this stack
    (``var/gunicorn.ctl``): gunicorn's default, one path per user, collides between two stacks
    on one host. An explicit ``--control-socket``/``--no-control-socket`` is kept."""
    if "--control-socket" in existing or "--no-control-socket" in existing:
        return existing
    path = (var / "gunicorn.ctl").resolve()
    return f"{existing} --control-socket {shlex.quote(str(path))}".strip()


def reachable(url: str) -> bool:
    client = connect(url, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def password(directory: Path) -> str:
    """The private server's password: made once with ``secrets.token_urlsafe``, kept in
    ``directory/password`` (mode 600) so data written before a restart stays reachable."""
    path = directory / "password"
    if not path.exists() or not path.read_text().strip():
        _write_private(path, secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user alone from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def private_redis(var: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on loopback, AOF on, data in ``var/redis``, the password of
    ``var/redis/password`` required; return it and its URL (password included). The password
    goes in a generated ``var/redis/redis.conf`` (mode 600), not on the command line, where
    ``ps`` would show it to every local user."""
    parts = urlsplit(url)
    local = parts.scheme == "redis" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    port = (parts.port or PRIVATE_PORT) if local else PRIVATE_PORT
    db = (parts.path.lstrip("/") or "0") if local else "0"
    directory = var / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bcx: redis-server is not installed (make run installs it as root)")
    secret = password(directory)
    conf = directory / "redis.conf"
    _write_private(conf, "# Written by `make run` (bcx/devstack.py) at each start.\n"
                         f"bind 127.0.0.1\nport {port}\ndir \"{directory.resolve()}\"\n"
                         f"appendonly yes\nlogfile \"{(directory / 'redis.log').resolve()}\"\n"
                         f"requirepass {secret}\n")
    process = subprocess.Popen([binary, str(conf.resolve())],
                               # Its own session: a terminal's Ctrl-C must not stop Redis
                               # before the components have flushed into it.
                               start_new_session=True)
    private_url = f"redis://:{secret}@127.0.0.1:{port}/{db}"
    client = connect(private_url, socket_timeout=2)
    for _ in range(100):
        try:
            client.ping()
            break
        except (redis.RedisError, OSError):
            if process.poll() is not None:
                raise SystemExit(
                    f"bcx: private redis-server exited; see {directory}/redis.log") from None
            time.sleep(0.1)
    client.close()
    return process, private_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bcx.devstack")
    parser.add_argument("--procfile", default="Procfile")
    parser.add_argument("--var", default="var")
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        cfg = configmod.load(args.config)
    except configmod.ConfigError as exc:
        print(f"bcx: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    install_log_filter(Redactor(cfg.secrets()))
    procfile = Path(args.procfile)
    entries = [line for line in procfile.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#")] if procfile.exists() else []
    if not entries:
        print(f"bcx: {procfile} names no component to run", file=sys.stderr)
        return 1
    env = dict(os.environ, BCX_CONF=os.path.abspath(cfg.path or "bcx.conf"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    var = Path(args.var)
    var.mkdir(exist_ok=True)
    redis_process = None
    if reachable(cfg.redis.url):
        log.info("using the configured Redis at %s", configmod.mask_url(cfg.redis.url))
    else:
        redis_process, url = private_redis(var, cfg.redis.url)
        env["BCX_REDIS_URL"] = url
        parts = urlsplit(url)
        log.info("configured Redis unreachable: started a private redis-server at "
                 "redis://%s:%s%s (data in %s/redis, AOF on; password in %s/redis/password: "
                 "REDISCLI_AUTH=\"$(cat %s/redis/password)\" redis-cli -p %s)",
                 parts.hostname, parts.port, parts.path, var, var, var, parts.port)
    env["GUNICORN_CMD_ARGS"] = control_socket_args(env.get("GUNICORN_CMD_ARGS", ""), var)
    honcho = [sys.executable, "-m", "honcho", "-f", args.procfile, "-d", ".", "start"]
    runner = subprocess.Popen(honcho, env=env)
    stopping: list[int] = []

    # honcho stops the whole stack on SIGINT/SIGTERM; pass ours on so a signal aimed at this
    # process alone (a service manager, `timeout`) leaves nothing running.
    def forward(signum: int, frame: object) -> None:
        stopping.append(signum)
        runner.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = runner.wait()
        if stopping and code in STOPPED_CODES:
            # Asked to stop and every component stopped: a clean exit, so `make run` /
            # `make demo` end without "Error 130" after Ctrl-C.
            log.info("stack stopped")
            return 0
        return code
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
