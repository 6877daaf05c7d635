"""Secrets: how a URL or a command line is shown without its credentials, and the redactor that
scrubs every configured secret out of free text (exception messages, log lines, delivery
records) before it leaves the process.

What counts as secret, and how it looks once masked (``MASK`` is ``***``):

- a URL's userinfo: ``redis://user:pw@host`` -> ``redis://user:***@host``; a user part with no
  password is often the token itself, so ``https://tok@host/`` -> ``https://***@host/``;
- the path, query and fragment of an http(s) URL (or any URL of another scheme), where webhook
  services keep their token: ``https://hooks.slack.com/services/T0/B0/XXX`` ->
  ``https://hooks.slack.com/***`` (a bare ``/`` or no path is left alone);
- Redis and websocket URLs (``redis://``, ``rediss://``, ``unix://``, ``ws(s)://``) keep their
  path (a db number, a socket, a feed endpoint) and only the values of query parameters named
  like a password, token, secret or key are masked:
  ``unix:///run/redis.sock?db=0&password=pw`` -> ``unix:///run/redis.sock?db=0&password=***``;
- in a command line, URLs as above and the value of an argument named like a secret
  (``--token X``, ``--token=X``, ``TOKEN=X``);
- every config key marked ``secret`` whose value is not a URL (``[web] api_token``) as a whole.

Scheme, host and port always stay visible: they say where a failing delivery was going.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
# Shorter strings are not searched for in free text: they would mask unrelated words and are
# no secret worth the name anyway. They are still masked where their key is printed.
MIN_LENGTH = 4
SECRET_NAME = re.compile(r"pass|pwd|token|secret|key|auth|sig|credential", re.IGNORECASE)
# Schemes whose path and query say where, not who: a Redis db or socket, a market-data feed.
PATH_KEEPING_SCHEMES = ("redis", "rediss", "unix", "ws", "wss")
# The ``secret`` mark of a config key that holds a command line (its arguments may be secret).
COMMAND = "command"
# What requests/urllib3 leave unescaped when they re-quote a URL (requests.utils.requote_uri),
# so the form an exception message shows is searched for too.
_REQUOTE_SAFE = "!#$%&'()*+,/:;=?@[]~"


def mask_url(url: str) -> str:
    """The URL with its secrets masked (see the module docstring); scheme, host and port kept.
    Text that is not a URL at all is masked whole."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme or "://" not in url:
        return MASK if url else url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    start = f"{parts.scheme}://" + (f"{_mask_userinfo(userinfo)}@{hostport}" if at else hostport)
    if parts.scheme.lower() not in PATH_KEEPING_SCHEMES:
        if parts.path in ("", "/") and not parts.query and not parts.fragment:
            return start + parts.path
        return f"{start}/{MASK}"
    # Assembled by hand: urlunsplit drops the "//" of unix:///path.
    return (start + parts.path + (f"?{_mask_query(parts.query)}" if parts.query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def _mask_userinfo(userinfo: str) -> str:
    user, colon, _password = userinfo.partition(":")
    return f"{user}:{MASK}" if colon else MASK


def _mask_query(query: str) -> str:
    items = []
    for item in query.split("&") if query else []:
        name, eq, value = item.partition("=")
        items.append(f"{name}={MASK}" if eq and value and SECRET_NAME.search(name) else item)
    return "&".join(items)


def mask_command(command: str) -> str:
    """A command line with the secrets of its arguments masked; the program stays readable."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return MASK if command else command
    shown = [shlex.quote(arg) for arg in argv[:1]]
    for previous, arg in zip(argv, argv[1:], strict=False):
        name, eq, value = arg.partition("=")
        if "://" in arg:
            shown.append(mask_url(arg))
        elif _secret_flag(previous):
            shown.append(MASK)
        elif eq and value and SECRET_NAME.search(name):
            shown.append(f"{name}={MASK}")
        else:
            shown.append(shlex.quote(arg))
    return " ".join(shown)


def _secret_flag(arg: str) -> bool:
    return arg.startswith("-") and "=" not in arg and bool(SECRET_NAME.search(arg))


# --------------------------------------------------------------------------- what is secret


def url_secrets(url: str) -> dict[str, str]:
    """Each secret piece of a URL that free text may carry, and what replaces it: the URL
    itself becomes its masked form; its password, and for http(s) its path and query (alone or
    together, as an exception message shows them), become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return {url: MASK}
    found = {url: mask_url(url)}
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found[password if colon else user] = MASK
    if parts.scheme.lower() not in PATH_KEEPING_SCHEMES:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for piece in (target, parts.path, parts.query, parts.fragment):
            if piece not in ("", "/"):
                found[piece] = MASK
    else:
        for item in parts.query.split("&"):
            name, eq, value = item.partition("=")
            if eq and value and SECRET_NAME.search(name):
                found[value] = MASK
    return found


def command_secrets(command: str) -> dict[str, str]:
    """The secret pieces of a command line's arguments (see :func:`mask_command`)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return {command: MASK}
    found: dict[str, str] = {}
    for previous, arg in zip(argv, argv[1:], strict=False):
        name, eq, value = arg.partition("=")
        if "://" in arg:
            found.update(url_secrets(arg))
        elif _secret_flag(previous):
            found[arg] = MASK
        elif eq and value and SECRET_NAME.search(name):
            found[value] = MASK
    return found


def mask_value(kind: bool | str, text: str) -> str:
    """A config value as ``bcx config check`` shows it; ``kind`` is the key's ``secret`` mark:
    ``COMMAND`` for a command line, true for a URL or a value that is secret as a whole."""
    if not kind or not text:
        return text
    if kind == COMMAND:
        return mask_command(text)
    return mask_url(text) if "://" in text else MASK


def value_secrets(kind: bool | str, text: str) -> dict[str, str]:
    """The secret pieces of a config value marked ``kind`` (see :func:`mask_value`)."""
    if not kind or not text:
        return {}
    if kind == COMMAND:
        return command_secrets(text)
    return url_secrets(text) if "://" in text else {text: MASK}


def section_secrets(values: Any) -> dict[str, str]:
    """The secrets of one config section: the values of its keys marked ``secret``."""
    found: dict[str, str] = {}
    for spec in fields(values):
        value = getattr(values, spec.name)
        if isinstance(value, str):
            found.update(value_secrets(spec.metadata.get("secret", False), value))
    return found


# --------------------------------------------------------------------------- scrubbing


class Redactor:
    """Replaces every known secret in a text, longest first, in each of the forms a message
    may show it (as written, percent-decoded, re-quoted as requests does)."""

    def __init__(self, secrets: dict[str, str] | None = None):
        replacements: dict[str, str] = {}
        for secret, shown in (secrets or {}).items():
            for form in _forms(secret):
                if len(form) >= MIN_LENGTH and form != shown:
                    replacements.setdefault(form, shown)
        self._replacements = replacements
        ordered = sorted(replacements, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def for_section(cls, values: Any) -> Redactor:
        return cls(section_secrets(values))

    @classmethod
    def for_url(cls, url: str) -> Redactor:
        return cls(url_secrets(url))

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda match: self._replacements[match.group(0)], text)


def _forms(secret: str) -> Iterator[str]:
    decoded = unquote(secret)
    yield from dict.fromkeys((secret, decoded, quote(decoded, safe=_REQUOTE_SAFE)))


# --------------------------------------------------------------------------- logging


class RedactingFilter(logging.Filter):
    """A handler filter that scrubs a record's message, traceback and stack before any
    handler formats it. Always lets the record through."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redactor(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


def install_log_filter(redactor: Redactor, logger_names: Iterable[str] = ()) -> None:
    """Scrub every line that the root logger's handlers, the named loggers' handlers and
    logging's last-resort handler write. Installing again replaces the earlier filter."""
    handlers = list(logging.getLogger().handlers)
    for name in logger_names:
        handlers += logging.getLogger(name).handlers
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(redactor))
