"""gunicorn settings for the web app: ``gunicorn -c web/gunicorn_conf.py web.wsgi:app``.

Bind address, workers and connections come from ``[web]`` of bcx.conf. The gevent worker
(gunicorn monkey-patches each worker before loading the app) serves every request and every
SSE stream as a greenlet: an open stream costs a socket and a small queue, not a thread, and
all the streams of a worker share one Redis subscription (web/sse.py). A worker takes
``max_streams`` streams plus ``threads`` other requests at once; a stream past ``max_streams``
is refused with 503, so the pool never fills with streams and other requests never wait.

Nothing here imports redis or ssl: the master must not load them before gevent patches the
workers it forks, so the liveness hooks import their module when called.
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

    def _remove_multiproc_dir() -> None:
        if os.getpid() == _master_pid:
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

    atexit.register(_remove_multiproc_dir)

from prometheus_client import multiprocess  # noqa: E402 - after the directory is set

from bcx import config as configmod
from bcx.secrets import Redactor, install_log_filter

_cfg = configmod.load()
_web = _cfg.web

bind = _web.bind
workers = _web.workers
worker_class = "gevent"
worker_connections = _web.max_streams + _web.threads
# A worker that stops heartbeating this long is restarted; streams wait in greenlets, which do
# not hold up the heartbeat.
timeout = 30
# On SIGTERM streams get this long to end before their worker is killed.
graceful_timeout = 10
keepalive = 5
# Protect against oversized request lines and headers from outside.
limit_request_line = 8190
limit_request_fields = 50
accesslog = "-"
errorlog = "-"


def worker_exit(server: Any, worker: Any) -> None:
    """The "web" heartbeat that bcx status and the services check (web/liveness.py)."""
    from web import liveness

    liveness.worker_exit(server, worker)


def on_exit(server: Any) -> None:
    from web import liveness

    liveness.on_exit(server)


def _scrub_logs() -> None:
    """No line of gunicorn's logs, nor of the app's (which reach logging's last resort),
    carries a secret of the config."""
    install_log_filter(Redactor(_cfg.secrets()), ("gunicorn.error", "gunicorn.access"))


def on_starting(server: Any) -> None:
    _scrub_logs()


def post_worker_init(worker: Any) -> None:
    # Again in each worker: a reload (SIGHUP) gives gunicorn new log handlers.
    _scrub_logs()
    from web import liveness

    liveness.post_worker_init(worker)


def child_exit(server: Any, worker: Any) -> None:
    """In the master when a worker has exited: drop its live gauges from /metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
