"""``bcx server``: wires config, Redis, notifiers, heartbeat and stop signals to the consumer."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time

import redis

from bcx import config as configmod
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.lifecycle import install_stop_handlers
from bcx.redisconn import from_config
from bcx.secrets import Redactor
from bcx.server import notifiers as notifiersmod
from bcx.server.consumer import Consumer
from bcx.store.alerts import AlertLog
from bcx.store.errors import RedisMisconfigured
from bcx.store.events import EventStream

log = logging.getLogger(__name__)

COMPONENT = "server"
EXIT_CONFIG = 2


def consumer_name(server: configmod.ServerConfig) -> str:
    """The configured name, else the host name: stable across restarts, so a server that
    crashed mid-delivery re-delivers its event in hand first, at once and in order, instead of
    leaving it to be claimed ``claim_idle`` later by a differently named successor."""
    return server.consumer or socket.gethostname()


def run(config: configmod.Config) -> int:
    """Deliver trigger events until SIGTERM/SIGINT; 0 after a clean stop, 2 on bad config
    (including a Redis misconfiguration: the message names the setting to fix)."""
    consumer: Consumer | None = None

    def pause(seconds: float) -> None:
        """Wait between webhook retries, still beating: a long retry is not a dead server."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if consumer is not None:
                with contextlib.suppress(redis.RedisError):
                    consumer.beat_if_due()
            time.sleep(min(left, 1.0))

    redact = Redactor(config.secrets())
    try:
        notifiers = notifiersmod.build(config.server, config.path or "bcx.conf", sleep=pause,
                                       redact=redact)
    except configmod.ConfigError as exc:
        print(f"bcx: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    name = consumer_name(config.server)
    connection = from_config(config.redis, client_name=f"bcx-server:{name}")
    keys = Keys(config.redis.prefix)
    stop = threading.Event()
    install_stop_handlers(stop)
    heartbeat = Heartbeat(connection, keys, COMPONENT, config.server.heartbeat_ttl)
    # XREADGROUP's block must end before the socket timeout, and soon enough that a stop
    # request is seen within about a second.
    block_ms = max(10, min(1000, int(config.redis.socket_timeout * 500)))
    consumer = Consumer(EventStream(connection, keys), AlertLog(connection, keys),
                        config.server, notifiers, stop, name=name, block_ms=block_ms,
                        heartbeat=heartbeat, redact=redact)
    log.info("server %s delivering from %s (group %s) via %s", name, keys.events_stream,
             config.server.group, ", ".join(n.name for n in notifiers) or "no notifier")
    try:
        consumer.run()
    except RedisMisconfigured as exc:
        log.error("server %s stops: %s", name, exc)
        return EXIT_CONFIG
    finally:
        for notifier in notifiers:
            notifier.close()
        try:
            heartbeat.clear()
        except Exception as exc:  # noqa: BLE001 - Redis may be down; the TTL will expire it
            log.warning("could not clear the heartbeat: %s", exc)
        connection.close()
    log.info("server %s stopped after %d event(s)", name, consumer.stats["handled"])
    return 0
