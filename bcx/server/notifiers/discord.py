"""The Discord notifier: a channel webhook
(https://discord.com/developers/docs/resources/webhook#execute-webhook)."""

from __future__ import annotations

from typing import Any

from bcx.events import TriggerEvent
from bcx.server.notifiers.base import HttpNotifier, render

# Discord refuses a message whose content is longer than this.
CONTENT_MAX = 2000


class DiscordNotifier(HttpNotifier):
    """POSTs ``{"content": ...}`` to the webhook URL (its last path segment is the token).
    Mentions in the text (an event message with @everyone) ping nobody."""

    name = "discord"

    def __init__(self, url: str, template: str, **kwargs: Any):
        super().__init__(template, **kwargs)
        self.url = url

    def send(self, event: TriggerEvent) -> None:
        self.post(self.url, json={"content": render(self.template, event, CONTENT_MAX),
                                  "allowed_mentions": {"parse": []}})
