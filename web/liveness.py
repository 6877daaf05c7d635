"""The web app's heartbeat (component ``web``), written by a thread in each gunicorn worker so
``bcx status``, ``/api/v1.0/health`` and the services see the web app like every other
component. Wired in by the ``post_worker_init`` and ``on_exit`` hooks of gunicorn_conf.py."""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis

from bcx import config as configmod
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.redisconn import from_config
from bcx.store import Heartbeats

log = logging.getLogger(__name__)
COMPONENT = "web"
# Per worker: set when it exits so its beat thread ends with it. Made in the worker, after
# gevent has patched threading (an Event of the master would block the whole worker).
_stopping: threading.Event | None = None


def _heartbeat(cfg: configmod.Config) -> Heartbeat:
    connection = from_config(cfg.redis, client_name="bcx-web-heartbeat")
    return Heartbeat.on(Heartbeats(connection, Keys(cfg.redis.prefix)), COMPONENT,
                        cfg.web.heartbeat_ttl)


def beat_until_stopped(heartbeat: Heartbeat, interval: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            heartbeat.beat()
        except (redis.RedisError, OSError) as exc:
            # The key expires on its own; keep trying so it comes back with Redis.
            log.warning("web heartbeat not written: %s", exc)
        stop.wait(interval)


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: the worker has loaded the app, so it can serve; start beating."""
    global _stopping
    cfg = configmod.load()
    heartbeat = _heartbeat(cfg)
    interval = max(0.5, cfg.web.heartbeat_ttl / 3)
    _stopping = threading.Event()
    threading.Thread(target=beat_until_stopped, args=(heartbeat, interval, _stopping),
                     name="bcx-web-heartbeat", daemon=True).start()


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the worker: stop its beat thread."""
    if _stopping is not None:
        _stopping.set()


def on_exit(server: Any) -> None:
    """gunicorn hook, in the master at shutdown: the web app reads as down at once."""
    try:
        heartbeat = _heartbeat(configmod.load())
        heartbeat.clear()
        heartbeat.connection.close()
    except (configmod.ConfigError, redis.RedisError, OSError) as exc:
        log.warning("web heartbeat not cleared: %s", exc)
