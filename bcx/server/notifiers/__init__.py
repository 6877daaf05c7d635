"""Notifiers: the ways a trigger event leaves BCX. One small adapter per module: a JSON-lines
log, a webhook, a command, e-mail over SMTP, Slack, Discord, Telegram and ntfy.

Each notifier's ``deliver(event, payload)`` returns when the event was handed over and raises
:class:`DeliveryError` when it gave up on it; ``payload`` is the event's JSON, the services get
the text of their template (``[server] <name>_template``). Retries live inside the notifier
(``base.with_retries``), so the consumer only sees "done" or "gave up" and dead-letters the
latter. Failure texts are scrubbed of secrets (``redact``) where they are made: an exception of
requests embeds the URL's path, where Slack and Discord keep their token and Telegram its bot
token.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

from bcx import config as configmod
from bcx.secrets import Redactor
from bcx.server.notifiers.base import RETRYABLE_STATUS, DeliveryError, Notifier
from bcx.server.notifiers.command import CommandNotifier
from bcx.server.notifiers.discord import DiscordNotifier
from bcx.server.notifiers.log import LogNotifier
from bcx.server.notifiers.ntfy import NtfyNotifier
from bcx.server.notifiers.slack import SlackNotifier
from bcx.server.notifiers.smtp import EmailNotifier
from bcx.server.notifiers.telegram import TelegramNotifier
from bcx.server.notifiers.webhook import WebhookNotifier

__all__ = ["RETRYABLE_STATUS", "CommandNotifier", "DeliveryError", "DiscordNotifier",
           "EmailNotifier", "LogNotifier", "Notifier", "NtfyNotifier", "SlackNotifier",
           "TelegramNotifier", "WebhookNotifier", "build"]


def build(server: configmod.ServerConfig, source: str = "bcx.conf",
          sleep: Callable[[float], None] = time.sleep,
          redact: Callable[[str], str] | None = None) -> list[Notifier]:
    """The active notifiers in configured order, or ConfigError naming the key a notifier
    needs and does not have. ``sleep`` is how notifiers wait between retries; ``redact``
    scrubs failure texts (default: of the server section's own secrets)."""
    redact = redact or Redactor.for_section(server)
    problems = configmod.server_problems(server, source)
    if problems:
        raise configmod.ConfigError(problems)
    retrying: dict[str, Any] = {"timeout": server.timeout, "retries": server.retries,
                "backoff": server.backoff, "sleep": sleep, "redact": redact}
    built: list[Notifier] = []
    for name in server.notifiers:
        if name == "log":
            built.append(LogNotifier(server.log_path))
        elif name == "webhook":
            built.append(WebhookNotifier(server.webhook_url, server.webhook_timeout,
                                         server.webhook_retries, server.webhook_backoff,
                                         sleep=sleep, redact=redact))
        elif name == "command":
            built.append(CommandNotifier(shlex.split(server.command), server.command_timeout,
                                         redact=redact))
        elif name == "email":
            built.append(EmailNotifier(
                server.email_host, server.email_port, sender=server.email_from,
                recipients=server.email_to, subject=server.email_subject,
                template=server.email_template, starttls=server.email_starttls,
                cafile=server.email_cafile, user=server.email_user,
                password=server.email_password, **retrying))
        elif name == "slack":
            built.append(SlackNotifier(server.slack_url, server.slack_template, **retrying))
        elif name == "discord":
            built.append(DiscordNotifier(server.discord_url, server.discord_template,
                                         **retrying))
        elif name == "telegram":
            built.append(TelegramNotifier(server.telegram_token, server.telegram_chat_id,
                                          server.telegram_url, server.telegram_template,
                                          **retrying))
        elif name == "ntfy":
            built.append(NtfyNotifier(server.ntfy_url, server.ntfy_token, server.ntfy_title,
                                      server.ntfy_template, **retrying))
    return built
