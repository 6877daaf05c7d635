"""The documented sample ``bcx.conf``, generated from the config schema so it cannot drift."""

from __future__ import annotations

import textwrap

from bcx.config import (
    EXCHANGE_DEFAULTS,
    ExchangeConfig,
    RedisConfig,
    RuleConfig,
    ServerConfig,
    TrackerConfig,
    WatcherConfig,
    WebConfig,
    describe,
)

HEADER = """\
# bcx.conf: the configuration of every BCX component (tracker, watcher, server, web).
#
# Looked up in this order: --config PATH, $BCX_CONF, /etc/bcx/bcx.conf, ./bcx.conf.
# Any key can be overridden from the environment as BCX_<SECTION>_<KEY>, for example
# BCX_REDIS_URL=redis://:secret@10.0.0.5:6379/2 or BCX_EXCHANGE_COINBASE_URL=ws://127.0.0.1:9001.
# Durations read like 250ms, 30s, 15m, 2h, 7d, 1w, 5y. Lists are separated by spaces or commas.
# `bcx config check` prints the effective configuration and exits 2 on any bad value.
# Regenerate this file's documentation with `bcx config sample`.
"""

RULES = """\
# [rule:NAME] sections define alert rules (more can be added through the API).
# kind is one of: above, below, cross_up, cross_down, change_pct, spread, stale, feed_down.
[rule:btc-wide-spread]
kind = spread
series = coinbase:BTC-USD
spread_mode = pct
threshold = 0.1
for = 10s
cooldown = 5m

[rule:coinbase-btc-stale]
kind = stale
series = coinbase:BTC-USD
threshold = 120

[rule:coinbase-down]
kind = feed_down
series = coinbase:BTC-USD
"""


def _section(name: str, cls: type, overrides: dict[str, str] | None = None,
             active: bool = False) -> str:
    overrides = overrides or {}
    lines = [f"[{name}]"]
    for key, default, help_text in describe(cls):
        for line in textwrap.wrap(help_text, 94):
            lines.append(f"# {line}")
        value = overrides.get(key, default)
        prefix = "" if active or key in overrides else "# "
        lines.append(f"{prefix}{key} = {value}".rstrip())
    return "\n".join(lines) + "\n"


def sample_config() -> str:
    parts = [HEADER]
    parts.append(_section("redis", RedisConfig))
    parts.append(_section("tracker", TrackerConfig))
    for name, defaults in EXCHANGE_DEFAULTS.items():
        parts.append(_section(f"exchange:{name}", ExchangeConfig,
                              {"url": defaults.url, "symbols": " ".join(defaults.symbols)}))
    parts.append(_section("watcher", WatcherConfig))
    rule_doc = _section("rule:EXAMPLE", RuleConfig).splitlines()
    parts.append("# Keys of a [rule:NAME] section:\n"
                 + "\n".join(f"#   {line.lstrip('# ')}" for line in rule_doc[1:]) + "\n")
    parts.append(RULES)
    parts.append(_section("server", ServerConfig))
    parts.append(_section("web", WebConfig))
    return "\n".join(parts)
