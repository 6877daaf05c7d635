"""The command notifier: a program of the user's own, run with the event JSON on stdin."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess

from bcx import config as configmod
from bcx.events import TriggerEvent
from bcx.secrets import Redactor
from bcx.server.notifiers.base import DeliveryError, Redact

log = logging.getLogger("bcx.server.notifiers")

STDERR_TAIL = 500


class CommandNotifier:
    """Runs the configured program (split with shlex, no shell) with the event JSON on stdin
    and its main fields in ``BCX_EVENT_*`` variables. A non-zero exit is a failure; past
    ``timeout`` the program's whole process group is killed, so a script's children go too."""

    name = "command"

    def __init__(self, argv: list[str], timeout: float,
                 redact: Redact | None = None):
        self.argv = argv
        self.timeout = timeout
        self.redact = redact or Redactor.for_section(
            configmod.ServerConfig(command=shlex.join(argv)))

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        env = dict(os.environ, BCX_EVENT_ID=event.id, BCX_EVENT_RULE=event.rule,
                   BCX_EVENT_SERIES=event.series, BCX_EVENT_STATE=event.state,
                   BCX_EVENT_MESSAGE=event.message)
        try:
            process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as exc:
            raise DeliveryError(self.redact(f"cannot run {self.argv[0]}: {exc}")) from None
        try:
            stdout, stderr = process.communicate((payload + "\n").encode("utf-8"),
                                                 timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise DeliveryError(f"{self.argv[0]} killed after its {self.timeout:g}s "
                                "timeout") from None
        if stdout:
            log.debug("command output for event %s: %s", event.id, self._tail(stdout))
        if process.returncode != 0:
            tail = self._tail(stderr)
            raise DeliveryError(f"{self.argv[0]} exited with status {process.returncode}"
                                + (f": {tail}" if tail else ""))

    def _tail(self, output: bytes) -> str:
        """The end of the program's output, scrubbed before it is cut so no part of a
        secret survives at the cut."""
        return self.redact(output.decode("utf-8", "replace").strip())[-STDERR_TAIL:]

    def close(self) -> None:
        pass


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's process group, then reap it. A grandchild that left the group
    and kept our pipes open must not hang the server, hence the bounded final wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        process.wait()
