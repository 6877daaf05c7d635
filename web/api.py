"""The JSON API blueprint at /api/v1.0: views parse and check input (``web.params``), call one
query of ``bcx.query`` / ``bcx.aggregate`` / ``bcx.rulebook`` and shape the JSON."""

from __future__ import annotations

import hmac
from typing import Any, cast

import redis
from flask import Blueprint, Response, abort, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from bcx import aggregate, query, rulebook
from bcx import health as healthmod
from bcx.coldtier.tiered import TieredTicks, TieredTrades
from bcx.config import FIELDS, Config
from bcx.keys import Keys
from bcx.store import (
    AlertLog,
    EventStream,
    RollupStore,
    RuleStore,
    Store,
    Stores,
    TradeStore,
)
from bcx.timeutil import now_ms
from web import openapi, params, sse
from web.errors import error_response

bp = Blueprint("api", __name__, url_prefix="/api/v1.0")

DAY_MS = 86_400_000
ALERTS_MAX = 1000
MAX_INTERVAL_S = 365 * 86400


def _cfg() -> Config:
    return cast(Config, current_app.config["BCX_CONFIG"])


def _keys() -> Keys:
    return cast(Keys, current_app.config["BCX_KEYS"])


def _connection() -> redis.Redis:
    return cast(redis.Redis, current_app.extensions["redis"])


def _store() -> Store:
    return Store(_connection(), _keys())


def _archive_dir() -> str | None:
    watcher = _cfg().watcher
    return watcher.archive_dir if watcher.archive else None


def _ticks() -> TieredTicks:
    """This request's raw reader: Redis and the archive's dataset (bcx.coldtier)."""
    return TieredTicks(_store(), _archive_dir())


def _trades(ticks: TieredTicks | None = None) -> TieredTrades:
    return TieredTrades(TradeStore(_connection(), _keys()), _archive_dir(),
                        ticks.cold if ticks is not None else None)


def _rollup_store() -> RollupStore:
    return RollupStore(_connection(), _keys())


def _rule_store() -> RuleStore:
    return RuleStore(_connection(), _keys())


def _rollups() -> list[int]:
    return [int(interval) for interval, _ in _cfg().watcher.rollups]


def _series(exchange: str, symbol: str) -> tuple[str, str]:
    """The normalised series of the path, or 404 when Redis has never seen it."""
    exchange, symbol = exchange.lower(), symbol.upper()
    if not _store().has_series(exchange, symbol):
        abort(404, f"unknown series {exchange}:{symbol}")
    return exchange, symbol


def _args(*allowed: str) -> Any:
    params.check_known(request.args, allowed)
    return request.args


@bp.get("/")
def index() -> Response:
    """The endpoints, read from the OpenAPI document: a starting point for a script."""
    _args()
    document = openapi.document(_cfg())
    base = bp.url_prefix or ""
    endpoints = [{"path": base + path, "methods": sorted(method.upper() for method in item
                                                         if method != "parameters"),
                  "summary": next((op["summary"] for method, op in item.items()
                                   if method != "parameters"), ""),
                  "href": None if "{" in path else base + path}
                 for path, item in document["paths"].items()]
    return jsonify(name=document["info"]["title"], version=document["info"]["version"],
                   openapi=f"{base}/openapi.json", metrics="/metrics", endpoints=endpoints)


@bp.get("/series")
def series_list() -> Response:
    args = _args("exchange", "quote", "q")
    exchange = params.text(args, "exchange")
    quote = params.text(args, "quote")
    needle = params.text(args, "q")
    found = query.overview(_store(), now_ms(), _cfg().web.stale_after)
    return jsonify(series=[
        item for item in found
        if (exchange is None or item["exchange"] == exchange.lower())
        and (quote is None or item["symbol"].rpartition("-")[2] == quote.upper())
        and (needle is None or needle.lower() in item["series"].lower())])


@bp.get("/series/<exchange>/<symbol>/latest")
def latest(exchange: str, symbol: str) -> Response:
    _args()
    exchange, symbol = exchange.lower(), symbol.upper()
    # The latest hash exists exactly when the series is registered: one round trip, not two.
    found = _store().latest(exchange, symbol)
    if found is None:
        abort(404, f"unknown series {exchange}:{symbol}")
    return jsonify(query.latest_view(found, now_ms()))


@bp.get("/series/<exchange>/<symbol>/history")
def history(exchange: str, symbol: str) -> Response:
    args = _args("field", "start", "end", "limit", "order")
    cap = _cfg().web.history_cap
    field = params.choice(args, "field", FIELDS, "price")
    start, end = params.time_range(args, None, None)
    limit = params.integer(args, "limit", cap, 1, cap)
    newest_first = params.choice(args, "order", ("asc", "desc"), "asc") == "desc"
    exchange, symbol = _series(exchange, symbol)
    return jsonify(query.history(_ticks(), exchange, symbol, field, start, end, limit,
                                 newest_first))


@bp.get("/series/<exchange>/<symbol>/trades")
def trades(exchange: str, symbol: str) -> Response:
    args = _args("start", "end", "limit", "order")
    cap = _cfg().web.history_cap
    start, end = params.time_range(args, None, None)
    limit = params.integer(args, "limit", cap, 1, cap)
    newest_first = params.choice(args, "order", ("asc", "desc"), "asc") == "desc"
    exchange, symbol = _series(exchange, symbol)
    return jsonify(query.trades(_trades(), exchange, symbol, start, end, limit,
                                newest_first))


@bp.get("/series/<exchange>/<symbol>/ohlc")
def ohlc(exchange: str, symbol: str) -> Response:
    args = _args("field", "start", "end", "interval")
    field = params.choice(args, "field", FIELDS, "price")
    start, end = _default_day(args)
    interval = params.interval(args, "interval", MAX_INTERVAL_S)
    exchange, symbol = _series(exchange, symbol)
    ticks = _ticks()
    return jsonify(aggregate.candles(_rollup_store(), ticks, exchange, symbol, field,
                                     interval, start, end, _rollups(), _trades(ticks)))


@bp.get("/series/<exchange>/<symbol>/stats")
def stats(exchange: str, symbol: str) -> Response:
    args = _args("field", "start", "end")
    field = params.choice(args, "field", FIELDS, "price")
    start, end = _default_day(args)
    exchange, symbol = _series(exchange, symbol)
    ticks = _ticks()
    return jsonify(aggregate.stats(_rollup_store(), ticks, exchange, symbol, field,
                                   start, end, _rollups(), _trades(ticks)))


def _default_day(args: Any) -> tuple[int, int]:
    """``start``/``end`` with the last 24 h as default (a missing start is end - 24 h)."""
    end = params.instant(args, "end", now_ms())
    assert end is not None
    start = params.instant(args, "start", max(0, end - DAY_MS))
    assert start is not None
    if start > end:
        raise params.ParamError("start", "must not be after end")
    return start, end


@bp.get("/alerts")
def alerts() -> Response:
    args = _args("limit", "series", "rule", "state", "since")
    limit = params.integer(args, "limit", 50, 1, ALERTS_MAX)
    series = params.text(args, "series")
    rule = params.text(args, "rule")
    state = params.choice(args, "state", ("firing", "resolved"), "") or None
    since = params.instant(args, "since")
    return jsonify(alerts=AlertLog(_connection(), _keys()).recent_alerts(
        limit, series=series, rule=rule, state=state, since=since,
        scan=_cfg().server.alerts_max))


@bp.post("/alerts/<alert_id>/ack")
def ack_alert(alert_id: str) -> tuple[Response, int]:
    _args()
    _authorise()
    try:
        ack = rulebook.acknowledge(_rule_store(), AlertLog(_connection(), _keys()), alert_id,
                                   now_ms(), _cfg().server.alerts_max)
    except LookupError as exc:
        return error_response(404, str(exc))
    except rulebook.RuleConflict as exc:
        return error_response(409, str(exc))
    return jsonify(ack), 200


def _with_status(found: list[rulebook.Rule]) -> list[dict[str, Any]]:
    store, now = _rule_store(), now_ms()
    states, silences = store.states(), rulebook.silences(store)
    return [dict(rule.to_dict(), status=rulebook.rule_status(
        rule, states.get(rule.id), silences.get(rule.id), now)) for rule in found]


def _rule_or_404(rule_id: str) -> rulebook.Rule:
    rule = rulebook.find_rule(_rule_store(), _cfg(), rule_id)
    if rule is None:
        abort(404, f"no rule {rule_id}")
    return rule


@bp.get("/rules")
def rules() -> Response:
    _args()
    return jsonify(rules=_with_status(rulebook.all_rules(_rule_store(), _cfg())))


@bp.get("/rules/<rule_id>")
def rule_view(rule_id: str) -> Response:
    _args()
    return jsonify(_with_status([_rule_or_404(rule_id)])[0])


@bp.patch("/rules/<rule_id>")
def patch_rule(rule_id: str) -> Response | tuple[Response, int]:
    _args()
    _authorise()
    try:
        rule = rulebook.patch_rule(_rule_store(), _cfg(), rule_id, _json_body(),
                                   EventStream(_connection(), _keys()),
                                   _cfg().redis.stream_maxlen)
    except rulebook.RuleError as exc:
        raise query.QueryError(exc.field, str(exc).partition(": ")[2]) from None
    except rulebook.RuleConflict as exc:
        return error_response(409, str(exc))
    if rule is None:
        abort(404, f"no rule {rule_id}")
    return jsonify(_with_status([rule])[0])


@bp.post("/rules/<rule_id>/silence")
def silence_rule(rule_id: str) -> Response:
    _args()
    _authorise()
    try:
        silence = rulebook.silence_rule(_rule_store(), _cfg(), rule_id, _json_body(), now_ms())
    except rulebook.RuleError as exc:
        raise query.QueryError(exc.field, str(exc).partition(": ")[2]) from None
    if silence is None:
        abort(404, f"no rule {rule_id}")
    return jsonify(silence)


@bp.delete("/rules/<rule_id>/silence")
def lift_silence(rule_id: str) -> Response:
    _args()
    _authorise()
    _rule_or_404(rule_id)
    if not _rule_store().lift_silence(rule_id):
        abort(404, f"rule {rule_id} is not silenced")
    return Response(status=204)


def _json_body() -> Any:
    try:
        return request.get_json(silent=True)
    except RecursionError:
        # Nested deeper than the JSON reader goes (silent= only covers ValueError).
        return None


@bp.post("/rules")
def add_rule() -> tuple[Response, int]:
    _args()
    _authorise()
    try:
        rule = rulebook.save_rule(_rule_store(), _store(), _cfg(), _json_body())
    except rulebook.UnknownSeries as exc:
        return error_response(422, str(exc).partition(": ")[2], parameter=exc.field)
    except rulebook.RuleError as exc:
        raise query.QueryError(exc.field, str(exc).partition(": ")[2]) from None
    except rulebook.RuleConflict as exc:
        return error_response(409, str(exc))
    return jsonify(rule.to_dict()), 201


@bp.delete("/rules/<rule_id>")
def delete_rule(rule_id: str) -> Response:
    _args()
    _authorise()
    if rule_id.startswith(rulebook.CONFIG_PREFIX):
        abort(409, f"rule {rule_id} is defined in bcx.conf; remove it there")
    if not rulebook.delete_rule(_rule_store(), rule_id, EventStream(_connection(), _keys()),
                                _cfg().redis.stream_maxlen):
        abort(404, f"no rule {rule_id}")
    return Response(status=204)


def _authorise() -> None:
    """Writes need ``Authorization: Bearer <[web] api_token>``; no token configured means
    writes are off (403), a missing or wrong one is 401. Compared in constant time."""
    token = _cfg().web.api_token
    if not token:
        abort(403, "rule writes are disabled: set [web] api_token in bcx.conf to enable them")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        response, status = error_response(401, "a valid 'Authorization: Bearer <token>' "
                                               "header is required for rule writes")
        response.status_code = status
        response.headers["WWW-Authenticate"] = 'Bearer realm="bcx"'
        raise HTTPException(response=response)


@bp.get("/health")
def health() -> tuple[Response, int]:
    args = _args("always_200")
    cfg = _cfg()
    report = healthmod.report(Stores.open(_connection(), _keys()), now_ms(),
                              cfg.web.stale_after, exchanges=tuple(cfg.exchanges),
                              tracker_instance=cfg.tracker.instance)
    # always_200: the status page polls every few seconds, and a browser logs each 5xx.
    always = params.choice(args, "always_200", ("true", "false"), "false") == "true"
    return jsonify(report), 200 if report["healthy"] or always else 503


@bp.get("/stream")
def stream() -> Response | tuple[Response, int]:
    args = _args("series")
    wanted = params.series_filter(args, "series")
    hub: sse.Hub = current_app.extensions["sse_hub"]
    try:
        client = hub.join(wanted, sse.client_socket(request.environ))
    except sse.StreamsFull as exc:
        refused, status = error_response(503, f"{exc}; try again shortly")
        refused.headers["Retry-After"] = str(sse.RETRY_AFTER_S)
        return refused, status
    response = Response(sse.events(hub, client, _cfg().web.sse_keepalive),
                        mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # proxies must pass events on at once
    # A body the server never started iterating is closed without running its finally.
    response.call_on_close(lambda: hub.leave(client))
    return response


@bp.get("/openapi.json")
def openapi_json() -> Response:
    _args()
    return jsonify(openapi.document(_cfg()))


@bp.errorhandler(query.QueryError)
def bad_parameter(exc: query.QueryError) -> tuple[Response, int]:
    return error_response(400, f"{exc.param}: {exc.message}", parameter=exc.param)
