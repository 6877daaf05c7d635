"""systemd's notify protocol: tell the service manager we are ready and alive.

Under a unit with ``Type=notify`` and ``WatchdogSec=``, systemd sets ``$NOTIFY_SOCKET``; each
heartbeat that reaches Redis also sends ``READY=1`` and ``WATCHDOG=1`` there, so the unit turns
active only once the component works and is restarted when its heartbeats stop. Elsewhere
(init.d, honcho, tests without the variable) this does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send ``message`` to ``$NOTIFY_SOCKET``; False when there is none or it cannot be
    reached (never raises: liveness reporting must not take a component down)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.debug("systemd notify failed: %s", exc)
        return False
    return True


def alive() -> bool:
    return notify("READY=1\nWATCHDOG=1")
