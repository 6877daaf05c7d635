"""The OpenAPI 3 document of /api/v1.0, written as data. Limits that come from the config
(the history cap) are filled in when the document is built, so it always tells the truth."""

from __future__ import annotations

from typing import Any

from bcx import rulebook
from bcx.config import EXCHANGES, FIELDS, RULE_KINDS, Config
from bcx.timeutil import SPAN_GRAMMAR

NUMBER_OR_NULL = {"type": "number", "nullable": True}
MS = {"type": "integer", "description": "epoch milliseconds"}
MS_OR_NULL = {**MS, "nullable": True}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


INSTANT = {"type": "string", "example": "2021-04-17T16:43:30Z"}
TIMES = ("epoch s, epoch ms, ISO-8601 (UTC if no offset) or relative to now: now, now-15m, "
         "now+1h, -1h (a relative time needs a unit)")
START = _query("start", f"Range start: {TIMES}.", INSTANT)
END = _query("end", f"Range end, inclusive: {TIMES}.", INSTANT)
FIELD = _query("field", "Which field.", {"type": "string", "enum": list(FIELDS),
                                         "default": "price"})
SERIES_PARAMS = [
    {"name": "exchange", "in": "path", "required": True, "schema": {"type": "string"},
     "description": "Exchange name, lower case (e.g. coinbase)."},
    {"name": "symbol", "in": "path", "required": True, "schema": {"type": "string"},
     "description": "Normalised BASE-QUOTE symbol (e.g. BTC-USD)."},
]
BAD_PARAM = _error("A parameter is invalid; the message names it.")
NO_SERIES = _error("Unknown series.")
REDIS_DOWN = _error("Redis is unavailable.")
TEXT = {"type": "string", "minLength": 1, "maxLength": 64}
RULE_ID = {"name": "rule_id", "in": "path", "required": True, "schema": {"type": "string"}}
WRITE_ERRORS = {"401": _error("Missing or wrong token."),
                "403": _error("Writes are disabled (no [web] api_token).")}
SERIES_PATTERN = "(" + "|".join(EXCHANGES) + "):[A-Z0-9]{1,12}-[A-Z0-9]{1,12}"


def _duration(key: str, minimum: float, description: str) -> dict[str, Any]:
    return {"description": description + ": seconds, or a string such as 5m",
            "anyOf": [{"type": "number", "minimum": minimum,
                       "maximum": rulebook.DURATION_MAX_S},
                      {"type": "string", "pattern": f"^{rulebook.DURATION_PATTERNS[key]}$",
                       "example": "5m"}]}


# What bcx.rulebook.parse_rule takes, exactly: one JSON type and spelling per key.
RULE_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
    "kind": {"type": "string", "enum": list(RULE_KINDS)},
    "series": {"type": "string", "pattern": f"^{SERIES_PATTERN}$",
               "example": "coinbase:BTC-USD"},
    "field": {"type": "string", "enum": list(FIELDS)},
    "threshold": {"type": "number", "minimum": -rulebook.THRESHOLD_MAX,
                  "maximum": rulebook.THRESHOLD_MAX},
    "window": _duration("window", 1, "look-back of change_pct and volume, at least 1 s"),
    "spread_mode": {"type": "string", "enum": ["pct", "abs"]},
    "for": _duration("for", 0, "how long the condition must hold"),
    "cooldown": _duration("cooldown", 0, "least time between firings"),
    "enabled": {"type": "boolean"},
    "labels": {"type": "object", "maxProperties": rulebook.LABELS_MAX,
               "description": "names (as rule names) to strings, passed on in the rule's "
                              "events",
               "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,64}$"},
               "additionalProperties": {"type": "string",
                                        "maxLength": rulebook.LABEL_VALUE_MAX}},
    "id": {"description": "ignored (a listed rule may be posted back as it is)"},
    "source": {"description": "ignored"},
    "status": {"description": "ignored"},
}
RULE_OUTPUT = {**{key: value for key, value in RULE_PROPERTIES.items()
                  if key not in ("id", "source", "status")},
               "name": {"type": "string"}, "series": {"type": "string"},
               "threshold": NUMBER_OR_NULL, "window": {"type": "number"},
               "for": {"type": "number"}, "cooldown": {"type": "number"}}


def _rule_input() -> dict[str, Any]:
    """One branch per group of kinds: level kinds need a series and a threshold (kind
    defaults to above), stale, volume and trade_size a positive threshold, feed_down neither."""
    def branch(kinds: list[str], required: list[str], **overrides: Any) -> dict[str, Any]:
        properties = {**RULE_PROPERTIES, "kind": {"type": "string", "enum": kinds}, **overrides}
        return {"type": "object", "properties": properties, "required": required,
                "additionalProperties": False}

    quantities = ["volume", "trade_size"]
    levels = [kind for kind in RULE_KINDS if kind not in ("stale", "feed_down", *quantities)]
    return {"anyOf": [
        branch(levels, ["name", "series", "threshold"],
               kind={"type": "string", "enum": levels, "default": "above"}),
        branch(["stale"], ["name", "kind", "series", "threshold"],
               threshold={"type": "number", "minimum": 0, "exclusiveMinimum": True,
                          "maximum": rulebook.THRESHOLD_MAX,
                          "description": "seconds without a tick"}),
        branch(quantities, ["name", "kind", "series", "threshold"],
               threshold={"type": "number", "minimum": 0, "exclusiveMinimum": True,
                          "maximum": rulebook.THRESHOLD_MAX,
                          "description": "base quantity: volume over the window (volume) "
                                         "or one trade's size (trade_size), fires at or "
                                         "above it"}),
        branch(["feed_down"], ["name", "kind"],
               series={"type": "string", "pattern": f"^({SERIES_PATTERN})?$",
                       "description": "a series of the exchange to watch; empty: every one"},
               threshold={**RULE_PROPERTIES["threshold"], "nullable": True,
                          "description": "ignored"}),
    ]}


def _rule_patch() -> dict[str, Any]:
    properties = {key: RULE_PROPERTIES[key] for key in rulebook.PATCHABLE}
    properties["threshold"] = {**properties["threshold"], "nullable": True}
    return {"type": "object", "properties": properties, "minProperties": 1,
            "additionalProperties": False,
            "description": "The keys to change; the rule is validated as a whole afterwards. "
                           "kind, series, field and spread_mode cannot be changed."}


STATUS = {
    "type": "object", "description": "what the rule is doing now",
    "properties": {
        "state": {"type": "string", "enum": ["normal", "pending", "firing", "silenced",
                                             "no_data"]},
        "since": {**MS_OR_NULL, "description": "when it entered that state"},
        "value": {**NUMBER_OR_NULL, "description": "the last value observed"},
        "silenced_until": MS_OR_NULL,
        "silence_comment": {"type": "string", "nullable": True}},
    "required": ["state", "since", "value"]}


def schemas(cfg: Config) -> dict[str, Any]:
    latest = {"time": MS_OR_NULL, "price": NUMBER_OR_NULL, "bid": NUMBER_OR_NULL,
              "ask": NUMBER_OR_NULL, "spread": NUMBER_OR_NULL,
              "age_s": {"type": "number", "nullable": True, "description": "seconds"},
              "bid_size": NUMBER_OR_NULL, "ask_size": NUMBER_OR_NULL,
              "last_size": {**NUMBER_OR_NULL, "description": "size of the newest trade"},
              "last_side": {"type": "string", "enum": ["buy", "sell"], "nullable": True,
                            "description": "the taker's side of the newest trade"}}
    summary = {"count": {"type": "integer"}, "min": NUMBER_OR_NULL, "max": NUMBER_OR_NULL,
               "mean": NUMBER_OR_NULL, "last": NUMBER_OR_NULL}
    # What /history and /trades answer beside their rows: one pager, one description.
    paging = {
        "count": {"type": "integer", "maximum": cfg.web.history_cap},
        "order": {"type": "string", "enum": ["asc", "desc"]},
        "truncated": {"type": "boolean"},
        "next_start": {**MS_OR_NULL, "description": "order=asc and truncated: pass as start "
                       "to page forward"},
        "next_end": {**MS_OR_NULL, "description": "order=desc and truncated: pass as end to "
                     "page back"},
        "source": {"type": "string", "enum": ["redis", "archive", "archive+redis"],
                   "description": "where the rows came from: Redis (the hot range), the "
                   "archive's dataset (older than raw_retention), or both"}}
    return {
        "Error": _object({"error": _object({"status": {"type": "integer"},
                                            "message": {"type": "string"},
                                            "parameter": {"type": "string"}},
                                           ["status", "message"])}, ["error"]),
        "Latest": _object(latest, list(latest)),
        "Index": _object({
            "name": {"type": "string"}, "version": {"type": "string"},
            "openapi": {"type": "string"}, "metrics": {"type": "string"},
            "endpoints": {"type": "array", "items": _object({
                "path": {"type": "string"},
                "methods": {"type": "array", "items": {"type": "string"}},
                "summary": {"type": "string"},
                "href": {"type": "string", "nullable": True,
                         "description": "the path when it has no placeholder"}},
                ["path", "methods", "summary", "href"])}},
            ["name", "version", "openapi", "endpoints"]),
        "SeriesSummary": _object({"series": {"type": "string"}, "exchange": {"type": "string"},
                                  "symbol": {"type": "string"}, **latest,
                                  "stale": {"type": "boolean"}},
                                 ["series", "exchange", "symbol", *latest, "stale"]),
        "SeriesList": _object({"series": {"type": "array", "items": {
            "$ref": "#/components/schemas/SeriesSummary"}}}, ["series"]),
        "History": _object({
            "series": {"type": "string"}, "field": {"type": "string", "enum": list(FIELDS)},
            "start": MS_OR_NULL, "end": MS_OR_NULL,
            **paging,
            "points": {"type": "array", "maxItems": cfg.web.history_cap, "items": {
                "type": "array", "minItems": 2, "maxItems": 2,
                "items": {"type": "number"}, "description": "[ms, value]"}}},
            ["series", "field", "count", "truncated", "points"]),
        "Trades": _object({
            "series": {"type": "string"}, "start": MS_OR_NULL, "end": MS_OR_NULL,
            **paging,
            "trades": {"type": "array", "maxItems": cfg.web.history_cap, "items": {
                "type": "array", "minItems": 5, "maxItems": 5,
                "items": {"oneOf": [{"type": "number"}, {"type": "string"}]},
                "description": "[ms, price, size, side (the taker's: buy or sell), id (the "
                               "venue's trade id, text)]"}}},
            ["series", "count", "truncated", "trades"]),
        "Candles": _object({
            "series": {"type": "string"}, "field": {"type": "string"},
            "interval": {"type": "integer", "description": "seconds"}, "start": MS, "end": MS,
            "source": {"type": "string", "description": "raw, or the roll-ups read before the "
                       "raw ticks, coarsest first: rollup:3600,60"},
            "count": {"type": "integer"},
            "candles": {"type": "array", "items": {
                "type": "array", "minItems": 5, "maxItems": 6, "items": {"type": "number"},
                "description": "[ms, open, high, low, close] and, for field=price, the "
                               "bucket's traded base volume: [ms, open, high, low, close, "
                               "volume] (0 where no trade)"}},
            "raw_source": {"type": "string", "enum": ["redis", "archive", "archive+redis"],
                           "description": "where raw ticks and trades were read: Redis, the "
                           "archive's dataset, or both"},
            "ticks": {"type": "array", "items": {"type": "integer"},
                      "description": "the tick count of each candle, in order"}},
            ["series", "field", "interval", "start", "end", "source", "count", "candles",
             "ticks"]),
        "Stats": _object({
            "series": {"type": "string"}, "field": {"type": "string"}, "start": MS, "end": MS,
            "source": {"type": "string"}, "interval": {"type": "integer", "nullable": True},
            "approximate": {"type": "boolean"}, "count": {"type": "integer"},
            "min": NUMBER_OR_NULL, "max": NUMBER_OR_NULL, "mean": NUMBER_OR_NULL,
            "median": NUMBER_OR_NULL, "std": NUMBER_OR_NULL, "first": NUMBER_OR_NULL,
            "last": NUMBER_OR_NULL, "first_time": MS_OR_NULL, "last_time": MS_OR_NULL,
            "change_pct": NUMBER_OR_NULL, "spread": _object(summary, list(summary)),
            "volume": {"type": "number", "description": "base volume traded in the range"},
            "quote_volume": {"type": "number", "description": "sum of price x size"},
            "vwap": {**NUMBER_OR_NULL, "description": "quote_volume / volume"},
            "trades": {"type": "integer", "description": "number of trades"},
            "buy_volume": {"type": "number", "description": "base volume of trades whose "
                           "taker bought"},
            "raw_source": {"type": "string", "enum": ["redis", "archive", "archive+redis"],
                           "description": "where raw ticks and trades were read: Redis, the "
                           "archive's dataset, or both"}},
            ["series", "field", "start", "end", "source", "count", "min", "max", "mean",
             "median", "std", "first", "last", "change_pct", "spread", "volume",
             "quote_volume", "vwap", "trades", "buy_volume"]),
        "Alert": _object({"rule": {"type": "string", "description": "the rule's id"},
                          "name": {"type": "string", "description": "the rule's name"},
                          "labels": {"type": "object",
                                     "additionalProperties": {"type": "string"}},
                          "series": {"type": "string"},
                          "state": {"type": "string"}, "kind": {"type": "string"},
                          "value": NUMBER_OR_NULL, "threshold": NUMBER_OR_NULL,
                          "value_text": {"type": "string", "nullable": True,
                                         "description": "the value's exact decimal text, "
                                         "where it has one (a price, a volume)"},
                          "silenced": {"type": "boolean", "description": "recorded, not "
                                       "delivered: the rule was silenced"},
                          "time": MS, "message": {"type": "string"},
                          "id": {"type": "string"}}, []),
        "Silence": _object({"until": MS, "comment": {"type": "string"}, "time": MS},
                           ["until", "comment", "time"]),
        "SilenceInput": {"type": "object", "additionalProperties": False,
                         "required": ["for"], "properties": {
                             "for": {"description": "how long: seconds, or a string such "
                                                    "as 1h",
                                     "anyOf": [{"type": "number", "minimum": 0,
                                                "exclusiveMinimum": True,
                                                "maximum": rulebook.DURATION_MAX_S},
                                               {"type": "string", "pattern":
                                                f"^{rulebook.DURATION_PATTERNS['for']}$",
                                                "description": "above 0"}]},
                             "comment": {"type": "string",
                                         "maxLength": rulebook.COMMENT_MAX}}},
        "Ack": _object({"alert": {"type": "string"}, "rule": {"type": "string"},
                        "series": {"type": "string"}, "time": MS},
                       ["alert", "rule", "series", "time"]),
        "RulePatch": _rule_patch(),
        "Alerts": _object({"alerts": {"type": "array", "items": {
            "$ref": "#/components/schemas/Alert"}}}, ["alerts"]),
        "RuleInput": _rule_input(),
        "Rule": _object({"id": {"type": "string"},
                         "source": {"type": "string", "enum": ["config", "api"]},
                         **RULE_OUTPUT, "status": STATUS},
                        ["id", "name", "source", "kind"]),
        "Rules": _object({"rules": {"type": "array", "items": {
            "$ref": "#/components/schemas/Rule"}}}, ["rules"]),
        "Health": _object({
            "healthy": {"type": "boolean"}, "redis": {"type": "string"},
            "archive": {"type": "object", "nullable": True, "description":
                        "the archive as the watcher last reported it (null: none reported)",
                        "properties": {"bytes": {"type": "integer", "nullable": True,
                                                 "description": "size on disk"},
                                       "oldest": {"type": "string", "nullable": True,
                                                  "description": "oldest date held"},
                                       "last_pass": {"type": "string", "description":
                                                     "the last trim pass's result"}}},
            "reasons": {"type": "array", "items": {"type": "string"}, "description":
                        "one line per component not up or series stale, with the reason"},
            "stale_after_s": {"type": "number"},
            "components": {"type": "object", "additionalProperties": _object({
                "state": {"type": "string", "enum": ["up", "degraded", "down"]},
                "up": {"type": "boolean"},
                "reason": {"type": "string", "description": "why it is not up (empty when "
                           "up): no heartbeat, a late beat, a gone process or the "
                           "component's own degraded text"},
                "age_s": NUMBER_OR_NULL, "interval_s": NUMBER_OR_NULL, "ttl_s": NUMBER_OR_NULL,
                "pid": {"type": "integer", "nullable": True},
                "host": {"type": "string", "nullable": True}, "time_ms": MS_OR_NULL,
                "degraded_since_ms": MS_OR_NULL,
                "info": {"type": "object", "additionalProperties": {"type": "string"},
                         "description": "the component's own heartbeat fields"}},
                ["state", "up", "reason"])},
            "series": {"type": "array", "items": _object({
                "series": {"type": "string"}, "time": MS_OR_NULL, "age_s": NUMBER_OR_NULL,
                "stale": {"type": "boolean"}, "reason": {"type": "string"}},
                ["series", "stale"])},
            "exchanges": {"type": "object", "description": "the tracker's feed statistics "
                          "per exchange (connected, frames, ticks, parse_errors, gaps, "
                          "reconnects, …)", "additionalProperties": {"type": "object"}},
            "gaps": {"type": "object", "description": "sequence gaps per exchange and symbol; "
                     "`*`: revealed by a frame of a channel not subscribed",
                     "additionalProperties": {"type": "object", "additionalProperties": {
                         "type": "integer"}}}},
            ["healthy", "reasons", "components", "series"]),
    }


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def document(cfg: Config) -> dict[str, Any]:
    cap = cfg.web.history_cap
    series_get = {"parameters": SERIES_PARAMS}
    return {
        "openapi": "3.0.3",
        "info": {"title": "BCX API", "version": "1.0",
                 "description": "Crypto market history kept in Redis. Times are epoch ms; "
                                "values are JSON numbers (the stored decimal strings converted "
                                "at the edge). Exchanges: " + ", ".join(EXCHANGES) + "."},
        "servers": [{"url": "/api/v1.0"}],
        "paths": {
            "/": {"get": _op("This list of endpoints, with links (from this document).", [],
                             {"200": _ok("Index")})},
            "/series": {"get": _op(
                "Every known series with its latest values and their age; the filters combine.",
                [_query("exchange", "Only this exchange (e.g. coinbase).", TEXT),
                 _query("quote", "Only symbols quoted in this currency (e.g. USD).", TEXT),
                 _query("q", "Only series whose id (exchange:BASE-QUOTE) contains this text, "
                        "case-insensitive.", TEXT)],
                {"200": _ok("SeriesList"), "400": BAD_PARAM})},
            "/series/{exchange}/{symbol}/latest": {**series_get, "get": _op(
                "Latest price, bid, ask, spread and age of one series, top-of-book sizes and "
                "the newest trade's size and taker side.", [],
                {"200": _ok("Latest"), "404": NO_SERIES})},
            "/series/{exchange}/{symbol}/history": {**series_get, "get": _op(
                f"Raw points of one field; at most {cap}. order=asc (the default): the oldest "
                "points of the range, oldest first; order=desc: the newest, newest first. "
                "When the range holds more, truncated is true and next_start (asc) or "
                "next_end (desc) says where to ask again.",
                [FIELD, START, END, _query("limit", "Most points returned.", {
                    "type": "integer", "minimum": 1, "maximum": cap, "default": cap}),
                 _query("order", "asc: oldest first; desc: newest first.", {
                     "type": "string", "enum": ["asc", "desc"], "default": "asc"})],
                {"200": _ok("History"), "400": BAD_PARAM, "404": NO_SERIES})},
            "/series/{exchange}/{symbol}/trades": {**series_get, "get": _op(
                f"Trades; at most {cap}, ordered and paged like history: order=asc (the "
                "default) the oldest of the range, oldest first; order=desc the newest, newest "
                "first; next_start (asc) or next_end (desc) pages on (trades of one "
                "millisecond are never split between pages).",
                [START, END, _query("limit", "Most trades returned.", {
                    "type": "integer", "minimum": 1, "maximum": cap, "default": cap}),
                 _query("order", "asc: oldest first; desc: newest first.", {
                     "type": "string", "enum": ["asc", "desc"], "default": "asc"})],
                {"200": _ok("Trades"), "400": BAD_PARAM, "404": NO_SERIES})},
            "/series/{exchange}/{symbol}/ohlc": {**series_get, "get": _op(
                "Candles, from the roll-ups where their watermark covers the range and from raw "
                "ticks after it; price candles add the traded volume (OHLC from the price "
                "series, volume from the trades). Default range: the last 24 h.",
                [FIELD, START, END, _query(
                    "interval", f"Candle width, whole seconds: {SPAN_GRAMMAR}. Units are "
                    "lower case: 1M is refused as ambiguous (write 1m, or 30d for a month). "
                    "Default: the smallest standard width giving at most 1000 candles.",
                    {"type": "string", "example": "1h"})],
                {"200": _ok("Candles"), "400": BAD_PARAM, "404": NO_SERIES})},
            "/series/{exchange}/{symbol}/stats": {**series_get, "get": _op(
                "Statistics of one field and of the spread over a range (default: the last "
                "24 h), with the traded volume, VWAP and trade count (exact); exact from raw "
                "ticks whenever they hold the range, approximate from roll-ups for long ranges "
                "or trimmed history.",
                [FIELD, START, END], {"200": _ok("Stats"), "400": BAD_PARAM, "404": NO_SERIES})},
            "/alerts": {"get": _op(
                "Recent handled trigger events (delivered, or recorded for a silenced rule), "
                "newest first; the filters combine.",
                [_query("limit", "Most events returned.", {
                    "type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
                 _query("series", "Only this series (or exchange, for feed_down).", TEXT),
                 _query("rule", "Only this rule, by id or name.", TEXT),
                 _query("state", "Only firing or resolved events.",
                        {"type": "string", "enum": ["firing", "resolved"]}),
                 _query("since", f"Only events at or after: {TIMES}.", INSTANT)],
                {"200": _ok("Alerts"), "400": BAD_PARAM})},
            "/alerts/{alert_id}/ack": {"post": {**_op(
                "Acknowledge a firing alert (needs the API token): its rule stops repeating it "
                "until it resolves.", [], {
                    "200": _ok("Ack"), **WRITE_ERRORS,
                    "404": _error("No such alert in the alert history."),
                    "409": _error("The alert is not firing now.")}),
                "parameters": [{"name": "alert_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "security": [{"bearer": []}]}},
            "/rules": {
                "get": _op("Every alert rule, from bcx.conf and from the API.", [],
                           {"200": _ok("Rules")}),
                "post": {**_op("Add a rule (needs the API token).", [], {
                    "201": _ok("Rule", "Created"), "400": _error("The rule is invalid."),
                    "401": _error("Missing or wrong token."),
                    "403": _error("Writes are disabled (no [web] api_token)."),
                    "409": _error("A rule of that name exists (the message names its id), "
                                  "or the API already holds [web] rules_max "
                                  f"({cfg.web.rules_max}) rules."),
                    "413": _error("Body too large."),
                    "422": _error("The series is neither configured for a tracked exchange "
                                  "nor known to Redis, so the rule could never fire.")}),
                    "security": [{"bearer": []}],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/RuleInput"}}}}},
            },
            "/rules/{rule_id}": {
                "parameters": [RULE_ID],
                "get": _op("One rule and what it is doing now.", [], {
                    "200": _ok("Rule"), "404": _error("No such rule.")}),
                "patch": {**_op("Change a rule added through the API (needs the API token).",
                                [], {
                    "200": _ok("Rule"), "400": _error("A key cannot be changed or a value "
                                                      "is invalid."), **WRITE_ERRORS,
                    "404": _error("No such rule."),
                    "409": _error("The rule is defined in bcx.conf, or the name is taken."),
                    "413": _error("Body too large.")}),
                    "security": [{"bearer": []}],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/RulePatch"}}}}},
                "delete": {**_op("Delete a rule added through the API; a firing rule sends "
                                 "its resolved events.", [], {
                    "204": {"description": "Deleted"}, **WRITE_ERRORS,
                    "404": _error("No such rule."),
                    "409": _error("The rule is defined in bcx.conf.")}),
                    "security": [{"bearer": []}]}},
            "/rules/{rule_id}/silence": {
                "parameters": [RULE_ID],
                "post": {**_op("Silence a rule (needs the API token): its events are recorded "
                               "but not delivered until `for` has passed.", [], {
                    "200": _ok("Silence"), "400": _error("The silence is invalid."),
                    **WRITE_ERRORS, "404": _error("No such rule."),
                    "413": _error("Body too large.")}),
                    "security": [{"bearer": []}],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/SilenceInput"}}}}},
                "delete": {**_op("Lift a rule's silence (needs the API token).", [], {
                    "204": {"description": "Lifted"}, **WRITE_ERRORS,
                    "404": _error("No such rule, or it is not silenced.")}),
                    "security": [{"bearer": []}]}},
            "/health": {"get": _op("Component heartbeats and series staleness.", [_query(
                "always_200", "true: answer 200 even when unhealthy (`healthy` says which).",
                {"type": "string", "enum": ["true", "false"]})], {
                "200": _ok("Health", "Healthy"), "400": BAD_PARAM, "503": {
                    "description": "Unhealthy, or Redis unavailable",
                    "content": {"application/json": {"schema": {"oneOf": [
                        {"$ref": "#/components/schemas/Health"},
                        {"$ref": "#/components/schemas/Error"}]}}}}})},
            "/stream": {"get": _op(
                "Server-Sent Events: `tick` (a JSON array of {series, time, price|bid|ask}), "
                "`trade` (a JSON array of {series, time, price, size, side, id}) "
                "and `alert` (a trigger event), with keep-alive comments.",
                [_query("series", "Only these series: EXCHANGE:SYMBOL, comma-separated.",
                        {"type": "string"})],
                {"200": {"description": "An event stream",
                         "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                 "400": BAD_PARAM,
                 "503": _error("This worker already serves [web] max_streams streams "
                               "(Retry-After), or Redis is unavailable.")})},
            "/openapi.json": {"get": _op("This document.", [], {
                "200": {"description": "OpenAPI 3", "content": {"application/json": {
                    "schema": {"type": "object"}}}}})},
        },
        "components": {"schemas": schemas(cfg), "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "[web] api_token of bcx.conf"}}},
    }


def _op(summary: str, parameters: list[dict[str, Any]],
        responses: dict[str, Any]) -> dict[str, Any]:
    responses = dict(responses)
    responses.setdefault("503", REDIS_DOWN)
    return {"summary": summary, "parameters": parameters, "responses": responses}
