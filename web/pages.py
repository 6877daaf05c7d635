"""The HTML pages blueprint (Highcharts); pages use only the public API."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages", __name__)
