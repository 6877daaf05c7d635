"""The HTML pages blueprint: the overview, the Highcharts Stock chart, alerts, rules and status.

The views only render a template; every figure on a page is fetched by the browser from the
public JSON API (``/api/v1.0``). This module also serves our own ``static/`` files and the
Highcharts files that ``npm ci`` installed under ``node_modules/`` (never committed).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory
from werkzeug.wrappers import Response


def _asset_root() -> Path:
    """Where ``static/`` and ``node_modules/`` live: next to the package in a checkout, or
    ``<prefix>/share/bcx`` in a virtualenv that ``make install`` built (``/opt/bcx``)."""
    checkout = Path(__file__).resolve().parent.parent
    for candidate in (checkout, Path(sys.prefix) / "share" / "bcx"):
        if (candidate / "static").is_dir():
            return candidate
    return checkout


ROOT = _asset_root()
STATIC_DIR = ROOT / "static"
# Overridable (app.config["BCX_VENDOR_DIR"]) for installs that keep node_modules elsewhere.
VENDOR_DIR = ROOT / "node_modules"
VENDORED = ("highcharts",)
_EXCHANGE = re.compile(r"^[a-z0-9_-]{1,32}$")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,16}-[A-Z0-9]{1,16}$")

bp = Blueprint("pages", __name__, static_folder=str(STATIC_DIR), static_url_path="/static")


def _page(template: str, **context: object) -> str:
    web = current_app.config["BCX_CONFIG"].web
    return render_template(template, stale_after=web.stale_after, **context)


@bp.get("/")
def overview() -> str:
    return _page("overview.html", title="Markets")


@bp.get("/chart/<exchange>/<symbol>")
def chart(exchange: str, symbol: str) -> str:
    # Only the shape is checked here: an unknown series still renders and says so, since the
    # tracker may start writing it any moment.
    if not _EXCHANGE.match(exchange) or not _SYMBOL.match(symbol):
        abort(404, description=f"no such series: {exchange}:{symbol}")
    return _page("chart.html", title=f"{exchange} {symbol}", exchange=exchange, symbol=symbol)


@bp.get("/alerts")
def alerts() -> str:
    return _page("alerts.html", title="Alerts")


@bp.get("/rules")
def rules() -> str:
    return _page("rules.html", title="Rules")


@bp.get("/status")
def status() -> str:
    return _page("status.html", title="Status")


@bp.get("/vendor/<package>/<path:filename>")
def vendor(package: str, filename: str) -> Response:
    """A file of an npm package we depend on (``package.json``), e.g. Highcharts Stock."""
    if package not in VENDORED:
        abort(404, description=f"no vendored package {package!r}")
    base = Path(current_app.config.get("BCX_VENDOR_DIR", VENDOR_DIR)) / package
    if not base.is_dir():
        abort(404, description=f"{package} is not installed: run `make setup` (npm ci)")
    return send_from_directory(base, filename, max_age=86400)
