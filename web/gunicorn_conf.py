"""gunicorn settings for the web app: ``gunicorn -c web/gunicorn_conf.py web.wsgi:app``.

Bind address, workers and threads come from ``[web]`` of bcx.conf. The gthread worker lets an
SSE client hold one thread for as long as it listens while the worker's main thread keeps
heartbeating, so long-lived streams are never mistaken for a hung worker.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

# /metrics sums every worker's HTTP counts: prometheus_client's multiprocess mode, in a
# private directory made before any worker (or prometheus_client) starts, removed at exit.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bcx-metrics-")
    _master_pid = os.getpid()
    atexit.register(lambda: os.getpid() == _master_pid and shutil.rmtree(
        os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True))

from prometheus_client import multiprocess  # noqa: E402 - after the directory is set

from bcx import config as configmod
from bcx.secrets import Redactor, install_log_filter
from web import liveness

_cfg = configmod.load()
_web = _cfg.web

bind = _web.bind
workers = _web.workers
threads = _web.threads
worker_class = "gthread"
# A worker that stops heartbeating this long is restarted; with gthread a busy request
# thread (an open stream) does not stop the heartbeat.
timeout = 30
# On SIGTERM streams get this long to end before their worker is killed.
graceful_timeout = 10
keepalive = 5
# Protect against oversized request lines and headers from outside.
limit_request_line = 8190
limit_request_fields = 50
accesslog = "-"
errorlog = "-"

# The "web" heartbeat that bcx status and the services check (web/liveness.py).
worker_exit = liveness.worker_exit
on_exit = liveness.on_exit


def _scrub_logs() -> None:
    """No line of gunicorn's logs, nor of the app's (which reach logging's last resort),
    carries a secret of the config."""
    install_log_filter(Redactor.for_config(_cfg), ("gunicorn.error", "gunicorn.access"))


def on_starting(server: Any) -> None:
    _scrub_logs()


def post_worker_init(worker: Any) -> None:
    # Again in each worker: a reload (SIGHUP) gives gunicorn new log handlers.
    _scrub_logs()
    liveness.post_worker_init(worker)


def child_exit(server: Any, worker: Any) -> None:
    """In the master when a worker has exited: drop its live gauges from /metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
