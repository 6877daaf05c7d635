"""gunicorn settings for the web app: ``gunicorn -c web/gunicorn_conf.py web.wsgi:app``.

Bind address, workers and threads come from ``[web]`` of bcx.conf. The gthread worker lets an
SSE client hold one thread for as long as it listens while the worker's main thread keeps
heartbeating, so long-lived streams are never mistaken for a hung worker.
"""

from __future__ import annotations

from typing import Any

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
