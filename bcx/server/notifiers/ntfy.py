"""The ntfy notifier: a message published to a topic (https://docs.ntfy.sh/publish/)."""

from __future__ import annotations

import base64
from typing import Any

from bcx.events import FIRING, RESOLVED, TriggerEvent
from bcx.server.notifiers.base import HttpNotifier, one_line, render

# ntfy keeps a message body up to 4,096 bytes as text (longer ones become attachments).
BODY_MAX = 4000
TAGS = {FIRING: "rotating_light", RESOLVED: "white_check_mark"}


class NtfyNotifier(HttpNotifier):
    """POSTs the rendered text as the body to the topic URL, with Title, Tags and Priority
    headers, and ``Authorization: Bearer`` when a token is set."""

    name = "ntfy"

    def __init__(self, url: str, token: str, title: str, template: str, **kwargs: Any):
        super().__init__(template, **kwargs)
        self.url = url
        self.token = token
        self.title = title

    def send(self, event: TriggerEvent) -> None:
        headers = {"Title": header_value(one_line(render(self.title, event))),
                   "Tags": TAGS.get(event.state, "warning"),
                   "Priority": "high" if event.state == FIRING else "default",
                   "X-BCX-Event-Id": event.id, "Content-Type": "text/plain; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.post(self.url, data=render(self.template, event, BODY_MAX).encode("utf-8"),
                  headers=headers)


def header_value(text: str) -> str:
    """HTTP header values are Latin-1: other text goes as an RFC 2047 encoded word, which
    ntfy decodes."""
    if text.isascii():
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="
