"""The Slack notifier: an incoming webhook (https://api.slack.com/messaging/webhooks)."""

from __future__ import annotations

from typing import Any

from bcx.events import TriggerEvent
from bcx.server.notifiers.base import HttpNotifier, render

# Slack truncates a message's text beyond 40,000 characters and advises at most 4,000.
TEXT_MAX = 4000


class SlackNotifier(HttpNotifier):
    """POSTs ``{"text": ...}`` to the incoming-webhook URL (the URL is the secret)."""

    name = "slack"

    def __init__(self, url: str, template: str, **kwargs: Any):
        super().__init__(template, **kwargs)
        self.url = url

    def send(self, event: TriggerEvent) -> None:
        self.post(self.url, json={"text": render(self.template, event, TEXT_MAX)})
