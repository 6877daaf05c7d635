"""Redis errors sorted into transient (wait them out) and fatal (a misconfiguration: stop
with one message that names the setting to fix).

Transient: the connection is lost or times out, the node is loading its data (LOADING), is a
replica after a failover (READONLY), lacks the replicas ``min-replicas-to-write`` asks for
(NOREPLICAS), or the cluster is re-sharding or has lost a master (TRYAGAIN, CLUSTERDOWN,
MASTERDOWN). Fatal: a standalone client pointed at a cluster node (MOVED/ASK), keys of one
transaction in several slots (CROSSSLOT), a key holding another type (WRONGTYPE), and a
missing or wrong password (NOAUTH, WRONGPASS, NOPERM).
"""

from __future__ import annotations

import redis
from redis import exceptions as rx

# Connection-level subclasses that no waiting will cure.
_FATAL_CONNECTION = (rx.AuthenticationError, rx.AuthorizationError)
_TRANSIENT = (rx.ConnectionError, rx.TimeoutError, rx.ReadOnlyError, rx.TryAgainError,
              rx.ClusterDownError, rx.BusyLoadingError)
_TRANSIENT_REPLIES = ("NOREPLICAS", "LOADING", "READONLY", "TRYAGAIN", "CLUSTERDOWN",
                      "MASTERDOWN")


def reply(exc: BaseException) -> str:
    """The server's error reply; redis-py prefixes the one a pipeline raises with
    ``Command # N (…) of pipeline caused error: ``."""
    text = str(exc)
    marker = " of pipeline caused error: "
    return text.split(marker, 1)[1] if marker in text else text


class RedisMisconfigured(Exception):
    """A Redis error that waiting will not cure; the message names the setting to fix."""


def is_transient(exc: BaseException) -> bool:
    """True for errors a component waits out with back-off."""
    if isinstance(exc, _FATAL_CONNECTION):
        return False
    if isinstance(exc, (*_TRANSIENT, OSError)):
        return True
    if isinstance(exc, redis.RedisError):
        return reply(exc).startswith(_TRANSIENT_REPLIES)
    return False


def advice(exc: BaseException) -> str | None:
    """For a fatal Redis error, what to change; None for a transient one or a bug."""
    if is_transient(exc):
        return None
    text = reply(exc)
    if isinstance(exc, rx.AskError | rx.MovedError) or text.startswith(("MOVED", "ASK")):
        return ("Redis answered MOVED/ASK: the server is a Redis Cluster node; "
                "set [redis] mode = cluster (BCX_REDIS_MODE=cluster)")
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError | rx.NoPermissionError
                  ) or text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
        return (f"Redis refused the credentials ({text}): set the password (and user) in "
                "[redis] url as redis://[user]:PASSWORD@host:port/db (BCX_REDIS_URL)")
    if isinstance(exc, rx.ClusterCrossSlotError) or text.startswith("CROSSSLOT"):
        return (f"Redis refused a multi-key command ({text}): keys of one operation span hash "
                "slots; this is a BCX bug or keys left by an older version (run `bcx migrate`)")
    if text.startswith("WRONGTYPE"):
        return (f"a key holds another type than BCX expects ({text}): another program uses "
                "the same keys; set a [redis] prefix of BCX's own (BCX_REDIS_PREFIX) or a "
                "database of its own in [redis] url")
    return None


def check(exc: BaseException) -> None:
    """Raise :class:`RedisMisconfigured` when ``exc`` is a fatal misconfiguration."""
    message = advice(exc)
    if message is not None:
        raise RedisMisconfigured(message) from exc
