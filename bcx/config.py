"""The one config schema: every section and key of ``bcx.conf``, its type, default and check.

Each section is a frozen dataclass whose fields carry their parser and help text, so names,
types, defaults and validation live together. ``load()`` finds the file, applies
``BCX_<SECTION>_<KEY>`` environment overrides and returns a typed :class:`Config`, or raises
:class:`ConfigError` naming the file, section, key, value and what was expected.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
import shlex
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from bcx import secrets
from bcx.secrets import mask_url as mask_url  # re-exported: callers know it as config.mask_url
from bcx.timeutil import format_duration, parse_duration

SEARCH_PATH = ("/etc/bcx/bcx.conf", "./bcx.conf")
EXCHANGES = ("coinbase", "binance", "bitfinex", "kraken")
FIELDS = ("price", "bid", "ask")
RULE_KINDS = (
    "above",
    "below",
    "cross_up",
    "cross_down",
    "change_pct",
    "spread",
    "stale",
    "feed_down",
    "volume",
    "trade_size",
)
NOTIFIERS = ("log", "webhook", "command", "email", "slack", "discord", "telegram", "ntfy")
# What a notifier template may name: the trigger event's fields (time as ISO-8601 UTC).
TEMPLATE_FIELDS = ("rule", "series", "state", "kind", "value", "threshold", "message", "time",
                   "id")
DEFAULT_TEMPLATE = ("[{state}] {rule} on {series}: {message} (value {value}, threshold "
                    "{threshold}, {time})")
PLACEHOLDERS = ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
DEFAULT_TITLE = "BCX {rule} {state}"
REDIS_MODES = ("standalone", "cluster", "sentinel")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_INSTANCE = re.compile(r"^[A-Za-z0-9_-]{0,32}$")


# --------------------------------------------------------------------------- value parsers
# Each parser takes the raw string and returns the typed value or raises ValueError whose
# message says what was expected.


def _int_min(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"an integer >= {minimum}") from None
        if value < minimum:
            raise ValueError(f"an integer >= {minimum}")
        return value

    return parse


def _float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("a finite number")
    return value


def _optional_float(text: str) -> float | None:
    return None if not text.strip() else _float(text)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError("a boolean (yes/no, true/false, on/off, 1/0)")


def _duration(minimum: float = 0.0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = parse_duration(text)
        except ValueError:
            raise ValueError("a duration such as 250ms, 30s, 15m, 2h, 7d or 5y") from None
        if value < minimum:
            raise ValueError(f"a duration of at least {format_duration(minimum)}")
        return value

    parse.render = format_duration  # type: ignore[attr-defined]
    return parse


def _forever_or_duration(text: str) -> float:
    """A duration, or 0 (also empty or ``forever``) for no limit."""
    if text.strip().lower() in ("", "0", "forever"):
        return 0.0
    return _duration(60)(text)


_forever_or_duration.render = (  # type: ignore[attr-defined]
    lambda value: "0" if not value else format_duration(value))


def _words(text: str) -> tuple[str, ...]:
    return tuple(word for word in re.split(r"[\s,]+", text.strip()) if word)


def _choice(options: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(options)

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value

    return parse


def _choices(options: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
    allowed = tuple(options)

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(word.lower() for word in _words(text))
        bad = [value for value in values if value not in allowed]
        if bad or len(set(values)) != len(values):
            raise ValueError("a list of distinct names from " + ", ".join(allowed))
        return values

    return parse


def _symbols(text: str) -> tuple[str, ...]:
    values = tuple(word.upper() for word in _words(text))
    if not values or any(not _SYMBOL.match(value) for value in values):
        raise ValueError("a list of symbols in BASE-QUOTE form, such as BTC-USD ETH-USD")
    return values


def _origins(text: str) -> tuple[str, ...]:
    values = tuple(word.rstrip("/") for word in _words(text))
    if any(value != "*" and not re.fullmatch(r"https?://[^/\s?#]+", value, re.IGNORECASE)
           for value in values):
        raise ValueError("origins such as https://dash.example.com http://localhost:3000, or *")
    return values


def _redis_url(text: str) -> str:
    value = text.strip()
    scheme = urlsplit(value).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("a redis://, rediss:// or unix:// URL")
    return value


def _host_ports(text: str) -> tuple[str, ...]:
    expected = "a list of HOST:PORT addresses, such as 10.0.0.1:26379 10.0.0.2:26379"
    values = _words(text)
    for value in values:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(expected)
    return values


def _ws_url(text: str) -> str:
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError("a ws:// or wss:// URL")
    return value


def _http_url_or_empty(text: str) -> str:
    value = text.strip()
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise ValueError("an http:// or https:// URL, or nothing")
    return value


def _template(text: str) -> str:
    """A notifier's message template: str.format placeholders from TEMPLATE_FIELDS only (no
    attribute or index access), checked by rendering it once."""
    value = text.strip()
    known = PLACEHOLDERS
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise ValueError(f"a template with placeholders among {known} ({exc}; write a "
                         "literal brace as {{ or }})") from None
    for name in names:
        if name not in TEMPLATE_FIELDS:
            shown = "{" + name + "}"
            raise ValueError(f"a template with placeholders among {known} ({shown} is not one)")
    try:
        value.format(**dict.fromkeys(TEMPLATE_FIELDS, "x"))
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"a template with placeholders among {known} ({exc})") from None
    return value


# A template spread over continuation lines renders back as one.
_template.render = lambda value: value.replace("\n", "\n    ")  # type: ignore[attr-defined]


def _email_addresses(text: str) -> tuple[str, ...]:
    values = _words(text)
    for value in values:
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain or any(c in value for c in "<>\"'"):
            raise ValueError("a list of e-mail addresses such as ops@example.com")
    return values


def _port(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if not 0 < value < 65536:
        raise ValueError("a TCP port, 1 to 65535")
    return value


def _prefix(text: str) -> str:
    value = text.strip()
    if not _PREFIX.match(value):
        raise ValueError("1 to 32 letters, digits, '_', '.' or '-'")
    return value


def _instance(text: str) -> str:
    value = text.strip()
    if not _INSTANCE.match(value):
        raise ValueError("nothing, or 1 to 32 letters, digits, '_' or '-'")
    return value


def _bind(text: str) -> str:
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("HOST:PORT, such as 127.0.0.1:8000")
    return value


def _series(text: str) -> str:
    value = text.strip()
    exchange, sep, symbol = value.partition(":")
    if not sep or exchange.lower() not in EXCHANGES or not _SYMBOL.match(symbol.upper()):
        raise ValueError("EXCHANGE:BASE-QUOTE, such as coinbase:BTC-USD")
    return f"{exchange.lower()}:{symbol.upper()}"


def _optional_series(text: str) -> str:
    return _series(text) if text.strip() else ""


def _rollups(text: str) -> tuple[tuple[float, float], ...]:
    expected = "a list of INTERVAL:RETENTION pairs, such as 1m:90d 1h:5y"
    pairs = []
    for word in _words(text):
        interval, sep, retention = word.partition(":")
        if not sep:
            raise ValueError(expected)
        try:
            pair = (parse_duration(interval), parse_duration(retention))
        except ValueError:
            raise ValueError(expected) from None
        if pair[0] < 1 or pair[0] != int(pair[0]) or pair[1] < pair[0]:
            raise ValueError(expected + " (whole seconds, retention >= interval)")
        pairs.append(pair)
    intervals = [pair[0] for pair in pairs]
    if len(set(intervals)) != len(intervals):
        raise ValueError(expected + " (each interval once)")
    return tuple(sorted(pairs))


_rollups.render = lambda value: " ".join(  # type: ignore[attr-defined]
    f"{format_duration(interval)}:{format_duration(retention)}" for interval, retention in value)


def _text(text: str) -> str:
    return text.strip()


# --------------------------------------------------------------------------- schema


def opt(default: Any, parse: Callable[[str], Any], help: str, *, secret: bool | str = False,
        key: str | None = None) -> Any:
    """A config key: its default, the parser of its string form and its documentation.
    ``secret`` marks a value never shown in clear (``secrets.COMMAND`` for a command line)."""
    return field(default=default, metadata={"parse": parse, "help": help, "secret": secret,
                                            "key": key})


def _render(value: Any, parse: Callable[[str], Any] | None = None) -> str:
    """A typed value back to the string form its parser reads."""
    if value is None:
        return ""
    if parse is not None and hasattr(parse, "render"):
        rendered: str = parse.render(value)
        return rendered
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return " ".join(str(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class RedisConfig:
    """[redis]: where the data lives."""

    url: str = opt("redis://127.0.0.1:6379/0", _redis_url,
                   "Redis URL: redis://[:password@]host:port/db, rediss:// for TLS, "
                   "unix:///path/redis.sock?db=0.", secret=True)
    prefix: str = opt("bcx", _prefix, "First part of every key BCX writes.")
    socket_timeout: float = opt(5.0, _duration(0.1), "Timeout of one Redis command.")
    stream_maxlen: int = opt(100000, _int_min(1),
                             "Trigger events kept in the durable event stream (approximate).")
    mode: str = opt("standalone", _choice(REDIS_MODES),
                    "standalone: one server at url. cluster: Redis Cluster, url names any node "
                    "(its password and TLS apply to every node). sentinel: the master named "
                    "sentinel_master, found through sentinels; url gives its password, TLS and "
                    "db (host and port are ignored).")
    sentinels: tuple[str, ...] = opt((), _host_ports,
                                     "sentinel: the Sentinel addresses, HOST:PORT ...")
    sentinel_master: str = opt("", _text, "sentinel: the monitored master's name.")
    sentinel_password: str = opt("", _text, "sentinel: the Sentinels' own password (empty: "
                                 "none).", secret=True)
    sentinel_tls: bool = opt(False, _bool, "sentinel: talk to the Sentinels over TLS.")


@dataclass(frozen=True)
class TrackerConfig:
    """[tracker]: the websocket-to-Redis ingester."""

    exchanges: tuple[str, ...] = opt(("coinbase",), _choices(EXCHANGES),
                                     "Exchanges to stream; each has its [exchange:NAME] section.")
    instance: str = opt("", _instance,
                        "Name of this tracker when several run side by side on one Redis: its "
                        "heartbeat is tracker.NAME, its stats bcx:stats:tracker:NAME:EXCHANGE. "
                        "Empty: tracker.")
    batch_size: int = opt(1000, _int_min(1), "Ticks written per Redis round trip at most.")
    flush_interval: float = opt(0.05, _duration(0.001),
                                "Longest a tick waits before its batch is written.")
    buffer_max: int = opt(1000000, _int_min(1),
                          "Ticks held while Redis is unreachable; past this the oldest are "
                          "dropped and logged.")
    backoff_initial: float = opt(1.0, _duration(0.01), "First reconnect delay.")
    backoff_max: float = opt(60.0, _duration(0.01), "Longest reconnect delay.")
    silence_timeout: float = opt(30.0, _duration(0.1),
                                 "A feed silent this long is treated as dead and reconnected.")
    ping_interval: float = opt(20.0, _duration(0), "Websocket ping period; 0 disables pings.")
    feed_down_after: int = opt(5, _int_min(1),
                               "Consecutive failed connections before a feed_down event.")
    max_frame_bytes: int = opt(1048576, _int_min(1024), "Larger frames are counted and skipped.")
    max_clock_skew: float = opt(5.0, _duration(0),
                                "Ticks stamped further ahead of the clock are refused.")
    publish_ticks: bool = opt(True, _bool, "Publish each written batch for live consumers.")
    backfill: bool = opt(False, _bool,
                         "Fetch trades missed in a trade-id gap or an outage from the venue's "
                         "REST API ([exchange:NAME] rest_url).")
    backfill_max_age: float = opt(3600.0, _duration(1),
                                  "Gaps older than this are left open, not fetched.")
    heartbeat_ttl: float = opt(30.0, _duration(1), "Lifetime of the tracker's heartbeat key.")
    stats_interval: float = opt(1.0, _duration(0.1), "How often stats and heartbeat are written.")


@dataclass(frozen=True)
class ExchangeConfig:
    """[exchange:NAME]: one venue's websocket and the symbols to follow."""

    url: str = opt("", _ws_url, "Websocket URL of the venue's public market-data feed.",
                   secret=True)
    rest_url: str = opt("", _http_url_or_empty,
                        "Base URL of the venue's public REST API (gap fill, bcx backfill); "
                        "empty: no REST calls.", secret=True)
    symbols: tuple[str, ...] = opt((), _symbols,
                                   "Symbols in normalised BASE-QUOTE form (BTC-USD, ETH-BTC).")


EXCHANGE_DEFAULTS: dict[str, ExchangeConfig] = {
    "coinbase": ExchangeConfig("wss://ws-feed.exchange.coinbase.com",
                               "https://api.exchange.coinbase.com", ("BTC-USD", "ETH-USD")),
    "binance": ExchangeConfig("wss://stream.binance.com:9443", "https://api.binance.com",
                             ("BTC-USDT", "ETH-USDT")),
    "bitfinex": ExchangeConfig("wss://api-pub.bitfinex.com/ws/2", "https://api-pub.bitfinex.com",
                              ("BTC-USD", "ETH-USD")),
    "kraken": ExchangeConfig("wss://ws.kraken.com", "https://api.kraken.com",
                            ("BTC-USD", "ETH-USD")),
}


@dataclass(frozen=True)
class WatcherConfig:
    """[watcher]: history manager (retention, roll-ups, archive) and rule watcher."""

    raw_retention: float = opt(2 * 86400.0, _duration(60),
                               "How long raw history is kept hot in Redis (older: archive).")
    rollups: tuple[tuple[float, float], ...] = opt(
        ((60.0, 90 * 86400.0), (3600.0, 5 * 365 * 86400.0)), _rollups,
        "OHLC roll-ups as INTERVAL:RETENTION pairs.")
    rollup_every: float = opt(10.0, _duration(0.1), "How often roll-ups are brought up to date.")
    trim_every: float = opt(60.0, _duration(1), "How often history is trimmed to retention.")
    late_grace: float = opt(120.0, _duration(0),
                            "Ticks arriving this late still update their roll-up bucket.")
    archive: bool = opt(True, _bool, "Write trimmed raw history to the Parquet archive "
                        "before deleting it from Redis (reads use both).")
    archive_dir: str = opt("./var/archive", _text,
                           "Root of the Parquet dataset (hive partitions exchange=/symbol=/"
                           "date=).")
    archive_retention: float = opt(0.0, _forever_or_duration,
                                   "How long archived days are kept on disk (0: forever).")
    rule_interval: float = opt(1.0, _duration(0.05), "Longest time between rule evaluations.")
    heartbeat_ttl: float = opt(30.0, _duration(1), "Lifetime of each thread's heartbeat key.")
    restart_backoff_max: float = opt(60.0, _duration(0.1),
                                     "Longest wait before a crashed thread is restarted.")


@dataclass(frozen=True)
class RuleConfig:
    """[rule:NAME]: one alert rule."""

    kind: str = opt("above", _choice(RULE_KINDS), "What the rule watches for.")
    series: str = opt("", _optional_series,
                      "EXCHANGE:SYMBOL the rule watches (for feed_down: any series of the "
                      "exchange, or empty for every exchange).")
    field: str = opt("price", _choice(FIELDS), "Field compared: price, bid or ask.")
    threshold: float | None = opt(None, _optional_float,
                                  "Level (above/below/cross), % move (change_pct), spread "
                                  "(spread), seconds without a tick (stale), base volume "
                                  "over the window (volume) or one trade's size "
                                  "(trade_size); volume and trade_size fire at or above it.")
    window: float = opt(300.0, _duration(1), "Look-back of change_pct and volume.")
    spread_mode: str = opt("pct", _choice(("pct", "abs")),
                           "spread: threshold as % of the mid price, or absolute.")
    for_: float = opt(0.0, _duration(0), "How long the condition must hold before firing.",
                      key="for")
    cooldown: float = opt(300.0, _duration(0),
                          "Least time between two firings; while still firing, the repeat "
                          "interval.")
    enabled: bool = opt(True, _bool, "Set to no to keep the rule without evaluating it.")


@dataclass(frozen=True)
class ServerConfig:
    """[server]: delivery of trigger events."""

    notifiers: tuple[str, ...] = opt(("log",), _choices(NOTIFIERS),
                                     "Active notifiers: log, webhook, command, email, slack, "
                                     "discord, telegram, ntfy.")
    log_path: str = opt("./var/alerts.jsonl", _text, "log: JSON-lines file of delivered events.")
    webhook_url: str = opt("", _http_url_or_empty, "webhook: URL that receives a JSON POST.",
                           secret=True)
    webhook_timeout: float = opt(5.0, _duration(0.1), "webhook: timeout of one POST.")
    webhook_retries: int = opt(3, _int_min(0), "webhook: retries before dead-lettering.")
    webhook_backoff: float = opt(1.0, _duration(0), "webhook: first retry delay (doubles).")
    command: str = opt("", _text, "command: program run with the event as JSON on stdin.",
                       secret=secrets.COMMAND)
    command_timeout: float = opt(10.0, _duration(0.1), "command: killed after this long.")
    retries: int = opt(3, _int_min(0), "email, slack, discord, telegram, ntfy: retries before "
                       "dead-lettering (webhook has its own).")
    backoff: float = opt(1.0, _duration(0), "email, slack, discord, telegram, ntfy: first retry "
                         "delay (doubles; a 429's Retry-After, up to 60s, when longer).")
    timeout: float = opt(10.0, _duration(0.1), "email, slack, discord, telegram, ntfy: timeout "
                         "of one attempt's connection and each read.")
    email_host: str = opt("", _text, "email: SMTP server host name.")
    email_port: int = opt(587, _port, "email: SMTP server port (587 submission, 25 relay).")
    email_starttls: bool = opt(True, _bool, "email: require STARTTLS before AUTH and sending "
                               "(a server that does not offer it is an error).")
    email_cafile: str = opt("", _text, "email: CA bundle that verifies the server's "
                            "certificate; empty means the system's.")
    email_user: str = opt("", _text, "email: AUTH user name; empty means no AUTH.")
    email_password: str = opt("", _text, "email: AUTH password.", secret=True)
    email_from: str = opt("", _text, "email: From address.")
    email_to: tuple[str, ...] = opt((), _email_addresses, "email: recipient addresses.")
    email_subject: str = opt(DEFAULT_TITLE, _template, "email: Subject template.")
    email_template: str = opt(DEFAULT_TEMPLATE, _template,
                              f"email: body template; placeholders: {PLACEHOLDERS}.")
    slack_url: str = opt("", _http_url_or_empty, "slack: incoming-webhook URL.", secret=True)
    slack_template: str = opt(DEFAULT_TEMPLATE, _template, "slack: message text template.")
    discord_url: str = opt("", _http_url_or_empty, "discord: webhook URL.", secret=True)
    discord_template: str = opt(DEFAULT_TEMPLATE, _template, "discord: message template.")
    telegram_token: str = opt("", _text, "telegram: bot token (from @BotFather).", secret=True)
    telegram_chat_id: str = opt("", _text, "telegram: chat id (or @channelname) to write to.")
    telegram_url: str = opt("https://api.telegram.org", _http_url_or_empty,
                            "telegram: Bot API base URL.")
    telegram_template: str = opt(DEFAULT_TEMPLATE, _template, "telegram: message template.")
    ntfy_url: str = opt("", _http_url_or_empty, "ntfy: topic URL, such as "
                        "https://ntfy.sh/mytopic.", secret=True)
    ntfy_token: str = opt("", _text, "ntfy: access token; empty means none.", secret=True)
    ntfy_title: str = opt(DEFAULT_TITLE, _template, "ntfy: Title template.")
    ntfy_template: str = opt(DEFAULT_TEMPLATE, _template, "ntfy: message template.")
    group: str = opt("bcx-server", _prefix, "Consumer group on the event stream.")
    consumer: str = opt("", _text, "Consumer name; empty means the host name (two servers on "
                        "one host need names of their own).")
    claim_idle: float = opt(60.0, _duration(1),
                            "Pending events of a silent consumer are claimed after this long.")
    alerts_max: int = opt(1000, _int_min(1), "Delivered events kept in the alert history.")
    dead_letter_max: int = opt(1000, _int_min(1), "Events kept in the dead-letter list.")
    heartbeat_ttl: float = opt(30.0, _duration(1), "Lifetime of the server's heartbeat key.")


@dataclass(frozen=True)
class WebConfig:
    """[web]: the Flask app and its JSON API."""

    bind: str = opt("127.0.0.1:8000", _bind, "Address the web app listens on.")
    api_token: str = opt("", _text, "Bearer token for rule writes; empty disables writes.",
                         secret=True)
    cors_origins: tuple[str, ...] = opt((), _origins, "Browser origins allowed to read the API "
                                        "from other sites (CORS), e.g. https://dash.example.com; "
                                        "* allows any; empty: none.")
    history_cap: int = opt(10000, _int_min(1), "Most points one history response returns.")
    rules_max: int = opt(1000, _int_min(1), "Most rules the API stores (rules of bcx.conf do "
                         "not count); adding one more is refused with 409.")
    stale_after: float = opt(60.0, _duration(1), "A series older than this counts as stale.")
    sse_keepalive: float = opt(15.0, _duration(1), "Keep-alive comment period on the SSE stream.")
    workers: int = opt(2, _int_min(1), "gunicorn worker processes.")
    threads: int = opt(100, _int_min(1), "Requests other than streams one gunicorn worker serves "
                       "at once (gevent greenlets; added to max_streams).")
    max_streams: int = opt(1000, _int_min(1), "Most open /api/v1.0/stream clients per web "
                           "worker process; one more gets 503 with Retry-After.")
    heartbeat_ttl: float = opt(30.0, _duration(1),
                               "Lifetime of the web app's heartbeat key (written by gunicorn).")


SECTIONS: dict[str, type] = {
    "redis": RedisConfig,
    "tracker": TrackerConfig,
    "exchange": ExchangeConfig,
    "watcher": WatcherConfig,
    "rule": RuleConfig,
    "server": ServerConfig,
    "web": WebConfig,
}
TEMPLATED = ("exchange", "rule")


@dataclass(frozen=True)
class Config:
    path: str | None
    redis: RedisConfig
    tracker: TrackerConfig
    exchanges: Mapping[str, ExchangeConfig]
    watcher: WatcherConfig
    rules: Mapping[str, RuleConfig]
    server: ServerConfig
    web: WebConfig

    def exchange(self, name: str) -> ExchangeConfig:
        return self.exchanges[name]

    def secrets(self) -> dict[str, str]:
        """Every secret of this configuration (what :class:`bcx.secrets.Redactor` scrubs)."""
        found: dict[str, str] = {}
        for values in (self.redis, self.server, self.web, *self.exchanges.values()):
            found.update(secrets.section_secrets(values))
        return found


@dataclass(frozen=True)
class Problem:
    source: str
    section: str
    key: str
    value: str
    expected: str

    def __str__(self) -> str:
        if not self.section:
            return f"{self.source}: {self.expected}"
        if not self.key:
            return f"{self.source}: [{self.section}]: expected {self.expected}"
        where = f"[{self.section}] {self.key}"
        if self.value:
            return f"{self.source}: {where} = {self.value!r}: expected {self.expected}"
        return f"{self.source}: {where} is missing: expected {self.expected}"


class ConfigError(Exception):
    """One or more problems in the configuration, each naming where and what was expected."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def key_of(spec: Any) -> str:
    key: str = spec.metadata.get("key") or spec.name
    return key


def env_name(section: str, key: str) -> str:
    return "BCX_" + re.sub(r"[^A-Za-z0-9]", "_", f"{section}_{key}").upper()


# BCX_* variables that are not config overrides: read by the CLI, the init scripts
# (/etc/default/bcx), `make`, scripts/install.sh, and set for a command notifier's program.
NON_CONFIG_ENV = frozenset((
    "BCX_CONF", "BCX_LOG_LEVEL", "BCX_EXTRA_PACKAGES", "BCX_DEFAULTS", "BCX_USER", "BCX_BIN",
    "BCX_RUNDIR", "BCX_LOGDIR", "BCX_WORKDIR", "BCX_START_WAIT", "BCX_STOP_WAIT", "BCX_PYTHON",
    "BCX_BUILD_PYTHON", "BCX_PIP_OPTS", "BCX_TEST_RUNDIR",
))
NON_CONFIG_ENV_PREFIXES = ("BCX_EVENT_",)


def env_problems(env: Mapping[str, str], known: Iterable[str]) -> list[Problem]:
    """A ``BCX_*`` variable that names no key of this config and is none of the other
    variables BCX reads is a typo that would be silently ignored: name it."""
    known = set(known)
    problems = []
    for name in sorted(env):
        if (not name.startswith("BCX_") or name in known or name in NON_CONFIG_ENV
                or name.startswith(NON_CONFIG_ENV_PREFIXES)):
            continue
        close = difflib.get_close_matches(name, sorted(known | NON_CONFIG_ENV), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(Problem(f"environment {name}", "", "", "",
                                "no such setting: BCX_<SECTION>_<KEY> overrides a key of "
                                "bcx.conf, BCX_RULE_<NAME>_<KEY> a rule the file defines"
                                + hint))
    return problems


def find_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if explicit:
        if not os.path.isfile(explicit):
            raise ConfigError([Problem(explicit, "", "", "", "the config file does not exist")])
        return explicit
    if env.get("BCX_CONF"):
        path = env["BCX_CONF"]
        if not os.path.isfile(path):
            raise ConfigError([Problem(path, "", "", "", "$BCX_CONF names a missing file")])
        return path
    for path in SEARCH_PATH:
        if os.path.isfile(path):
            return path
    raise ConfigError([Problem("bcx", "", "", "",
                               "no config file: pass --config, set $BCX_CONF or create "
                               + " or ".join(SEARCH_PATH))])


def load(path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Find, read, override from the environment and validate the configuration."""
    env = os.environ if env is None else env
    path = find_path(path, env)
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError([Problem(path, "", "", "", f"a readable INI file ({exc})")]) from None
    return from_parser(parser, path, env)


def from_parser(parser: configparser.ConfigParser, path: str,
                env: Mapping[str, str]) -> Config:
    problems: list[Problem] = []
    sections: dict[str, Any] = {}
    exchanges: dict[str, ExchangeConfig] = dict(EXCHANGE_DEFAULTS)
    rules: dict[str, RuleConfig] = {}

    for name in parser.sections():
        kind, _, item = name.partition(":")
        if kind not in SECTIONS or (kind in TEMPLATED) != bool(item):
            problems.append(Problem(path, name, "", "", "a known section name: [redis], [tracker], "
                                    "[exchange:NAME], [watcher], [rule:NAME], [server], [web]"))
            continue
        if kind == "exchange" and item not in EXCHANGES:
            problems.append(Problem(path, name, "", "", "an exchange among "
                                    + ", ".join(EXCHANGES)))
            continue

    for kind, cls in SECTIONS.items():
        if kind in TEMPLATED:
            continue
        sections[kind] = _build(cls(), kind, parser, path, env, problems)
    for name in EXCHANGES:
        exchanges[name] = _build(EXCHANGE_DEFAULTS[name], f"exchange:{name}", parser, path, env,
                                 problems)
    for section in parser.sections():
        kind, _, item = section.partition(":")
        if kind == "rule" and item:
            rules[item] = _build(RuleConfig(), section, parser, path, env, problems)
            problems.extend(rule_problems(rules[item], section, path))

    overridable = [(kind, cls) for kind, cls in SECTIONS.items() if kind not in TEMPLATED]
    overridable += [(f"exchange:{name}", ExchangeConfig) for name in EXCHANGES]
    overridable += [(f"rule:{name}", RuleConfig) for name in rules]
    problems.extend(env_problems(env, (env_name(section, key_of(spec))
                                       for section, cls in overridable for spec in fields(cls))))
    problems.extend(server_problems(sections.get("server", ServerConfig()), path))
    problems.extend(redis_problems(sections.get("redis", RedisConfig()), path))
    for name in sections.get("tracker", TrackerConfig()).exchanges:
        if not exchanges[name].symbols:
            problems.append(Problem(path, f"exchange:{name}", "symbols", "",
                                    "at least one symbol for an exchange the tracker streams"))
    if problems:
        raise ConfigError(problems)
    return Config(path=path, exchanges=exchanges, rules=rules, **sections)


def _build(base: Any, section: str, parser: configparser.ConfigParser, path: str,
           env: Mapping[str, str], problems: list[Problem]) -> Any:
    specs = {key_of(spec): spec for spec in fields(base)}
    raw: dict[str, tuple[str, str]] = {}
    if parser.has_section(section):
        for key, value in parser.items(section):
            if key not in specs:
                problems.append(Problem(path, section, key, value,
                                        "a known key: " + ", ".join(specs)))
                continue
            raw[key] = (path, value)
    for key in specs:
        name = env_name(section, key)
        if name in env:
            raw[key] = (f"environment {name}", env[name])
    changes = {}
    for key, (source, value) in raw.items():
        spec = specs[key]
        try:
            changes[spec.name] = spec.metadata["parse"](value)
        except ValueError as exc:
            shown = secrets.mask_value(spec.metadata["secret"], value.strip())
            problems.append(Problem(source, section, key, shown, str(exc)))
    return replace(base, **changes)


def rule_problems(rule: RuleConfig, section: str, path: str) -> list[Problem]:
    problems = []
    if rule.kind != "feed_down" and not rule.series:
        problems.append(Problem(path, section, "series", "",
                                f"EXCHANGE:BASE-QUOTE ({rule.kind} rules need a series)"))
    if rule.kind not in ("feed_down",) and rule.threshold is None:
        problems.append(Problem(path, section, "threshold", "",
                                f"a number ({rule.kind} rules need a threshold)"))
    if rule.kind == "stale" and rule.threshold is not None and rule.threshold <= 0:
        problems.append(Problem(path, section, "threshold", str(rule.threshold),
                                "a positive number of seconds"))
    if rule.kind in ("volume", "trade_size") and rule.threshold is not None \
            and rule.threshold <= 0:
        problems.append(Problem(path, section, "threshold", str(rule.threshold),
                                "a positive quantity of the base currency"))
    return problems


def redis_problems(redis: RedisConfig, path: str) -> list[Problem]:
    """Each mode needs its own settings."""
    problems = []
    scheme = urlsplit(redis.url).scheme
    if redis.mode == "sentinel":
        if not redis.sentinels:
            problems.append(Problem(path, "redis", "sentinels", "",
                                    "at least one HOST:PORT when mode = sentinel"))
        if not redis.sentinel_master:
            problems.append(Problem(path, "redis", "sentinel_master", "",
                                    "the master's name when mode = sentinel"))
    if redis.mode != "standalone" and scheme == "unix":
        problems.append(Problem(path, "redis", "url", mask_url(redis.url),
                                f"a redis:// or rediss:// URL when mode = {redis.mode}"))
    if redis.mode == "cluster" and (urlsplit(redis.url).path.strip("/") or "0") != "0":
        problems.append(Problem(path, "redis", "url", mask_url(redis.url),
                                "database 0 when mode = cluster (Cluster has no other)"))
    return problems


def server_problems(server: ServerConfig, path: str) -> list[Problem]:
    """Each active notifier needs its own setting."""
    problems = []
    if "log" in server.notifiers and not server.log_path:
        problems.append(Problem(path, "server", "log_path", "",
                                "a file path when the log notifier is on"))
    if "webhook" in server.notifiers and not server.webhook_url:
        problems.append(Problem(path, "server", "webhook_url", "",
                                "an http(s) URL when the webhook notifier is on"))
    if "command" in server.notifiers:
        try:
            argv = shlex.split(server.command)
        except ValueError as exc:
            problems.append(Problem(path, "server", "command",
                                    secrets.mask_command(server.command),
                                    f"a command line shlex can split ({exc})"))
        else:
            if not argv:
                problems.append(Problem(path, "server", "command", "",
                                        "a program to run when the command notifier is on"))
    for name, keys in NOTIFIER_NEEDS.items():
        if name in server.notifiers:
            for key, expected in keys:
                if not getattr(server, key):
                    problems.append(Problem(path, "server", key, "",
                                            f"{expected} when the {name} notifier is on"))
    if ("email" in server.notifiers and server.email_cafile
            and not os.path.isfile(server.email_cafile)):
        problems.append(Problem(path, "server", "email_cafile", server.email_cafile,
                                "a readable CA bundle file"))
    if "email" in server.notifiers and bool(server.email_user) != bool(server.email_password):
        key = "email_password" if server.email_user else "email_user"
        problems.append(Problem(path, "server", key, "",
                                "email_user and email_password together, or neither"))
    return problems


# What each notifier needs set, and how its problem describes the value.
NOTIFIER_NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "email": (("email_host", "an SMTP server host name"), ("email_from", "a From address"),
              ("email_to", "one or more recipient addresses")),
    "slack": (("slack_url", "a Slack incoming-webhook URL"),),
    "discord": (("discord_url", "a Discord webhook URL"),),
    "telegram": (("telegram_token", "a bot token"), ("telegram_chat_id", "a chat id"),
                 ("telegram_url", "the Bot API base URL")),
    "ntfy": (("ntfy_url", "an ntfy topic URL"),),
}


# --------------------------------------------------------------------------- rendering


def _section_items(config: Config) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = [("redis", config.redis), ("tracker", config.tracker)]
    items += [(f"exchange:{name}", value) for name, value in config.exchanges.items()]
    items.append(("watcher", config.watcher))
    items += [(f"rule:{name}", value) for name, value in config.rules.items()]
    items += [("server", config.server), ("web", config.web)]
    return items


def render(config: Config) -> str:
    """The effective configuration as INI, secrets masked."""
    lines = [f"# effective configuration from {config.path}"]
    for section, values in _section_items(config):
        lines.append(f"\n[{section}]")
        for spec in fields(values):
            text = _render(getattr(values, spec.name), spec.metadata["parse"])
            text = secrets.mask_value(spec.metadata["secret"], text)
            lines.append(f"{key_of(spec)} = {text}")
    return "\n".join(lines) + "\n"


def schema_keys() -> dict[str, list[str]]:
    """Every section kind and its keys, for documentation checks."""
    return {kind: [key_of(spec) for spec in fields(cls)] for kind, cls in SECTIONS.items()}


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(key, default as written, help) for each key of a section class."""
    out = []
    for spec in fields(cls):
        default = spec.default if spec.default is not MISSING else ""
        out.append((key_of(spec), _render(default, spec.metadata["parse"]), spec.metadata["help"]))
    return out
