"""The e-mail notifier: one message per event through an SMTP server (smtplib), STARTTLS and
AUTH when configured."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from bcx.events import TriggerEvent
from bcx.server.notifiers.base import (
    GiveUp,
    Redact,
    Retry,
    Sleep,
    one_line,
    render,
    with_retries,
)


class EmailNotifier:
    """Sends the rendered ``template`` as a plain-text message from ``sender`` to
    ``recipients``. With ``starttls`` a server that does not offer STARTTLS is refused before
    anything (the password above all) is sent. SMTP 4xx replies, lost connections and timeouts
    are retried; 5xx replies (a wrong password, a refused recipient) and certificate errors
    are not."""

    name = "email"

    def __init__(self, host: str, port: int, *, sender: str, recipients: tuple[str, ...],
                 subject: str, template: str, starttls: bool = True, cafile: str = "",
                 user: str = "", password: str = "", timeout: float, retries: int,
                 backoff: float, redact: Redact, sleep: Sleep = time.sleep,
                 context: ssl.SSLContext | None = None):
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.subject = subject
        self.template = template
        self.starttls = starttls
        self.cafile = cafile
        self.user = user
        self.password = password
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.redact = redact
        self.sleep = sleep
        self.context = context

    def deliver(self, event: TriggerEvent, payload: str) -> None:
        message = self.message(event)
        with_retries(self.name, event, lambda: self.send(message), retries=self.retries,
                     backoff=self.backoff, sleep=self.sleep)

    def message(self, event: TriggerEvent) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = one_line(render(self.subject, event))
        message["Date"] = formatdate(usegmt=True)
        # A domain of our own: make_msgid would otherwise ask DNS for this host's name.
        message["Message-ID"] = make_msgid("bcx", domain=self.sender.rpartition("@")[2])
        message["X-BCX-Event-Id"] = event.id
        message.set_content(render(self.template, event))
        return message

    def send(self, message: EmailMessage) -> None:
        where = f"{self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    if not smtp.has_extn("starttls"):
                        raise GiveUp(f"{where} does not offer STARTTLS (email_starttls = yes); "
                                     "nothing was sent")
                    smtp.starttls(context=self.tls_context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = self.redact(f"{where} refused every recipient: {_replies(exc.recipients)}")
            raise (GiveUp(error) if all(code >= 500 for code in codes) else Retry(error)) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            error = self.redact(f"{where} answered {exc.smtp_code} {one_line(text)}")
            raise (GiveUp(error) if exc.smtp_code >= 500 else Retry(error)) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise GiveUp(self.redact(f"{where}: {exc}")) from None
        except ssl.SSLCertVerificationError as exc:
            raise GiveUp(self.redact(f"{where}: TLS certificate not trusted: {exc}")) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Retry(self.redact(f"{where}: {type(exc).__name__}: {exc}")) from None

    def tls_context(self) -> ssl.SSLContext:
        if self.context is None:
            self.context = ssl.create_default_context(cafile=self.cafile or None)
        return self.context

    def close(self) -> None:
        pass


def _replies(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {one_line(text.decode('utf-8', 'replace'))}"
                     for address, (code, text) in refused.items())
