"""The Telegram notifier: a bot's sendMessage (https://core.telegram.org/bots/api#sendmessage)."""

from __future__ import annotations

from typing import Any

from bcx.events import TriggerEvent
from bcx.server.notifiers.base import GiveUp, HttpNotifier, render

# The Bot API refuses a message text longer than this.
TEXT_MAX = 4096


class TelegramNotifier(HttpNotifier):
    """POSTs ``{"chat_id": ..., "text": ...}`` to ``{api}/bot{token}/sendMessage``. The token
    sits in the URL's path, so every failure text is scrubbed of it (``redact``)."""

    name = "telegram"

    def __init__(self, token: str, chat_id: str, api: str, template: str, **kwargs: Any):
        super().__init__(template, **kwargs)
        self.chat_id = chat_id
        self.url = f"{api.rstrip('/')}/bot{token}/sendMessage"

    def send(self, event: TriggerEvent) -> None:
        response = self.post(self.url, json={"chat_id": self.chat_id,
                                             "text": render(self.template, event, TEXT_MAX)})
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            raise GiveUp(self.redact(f"the Bot API did not answer ok: {response.text[:200]}"))
