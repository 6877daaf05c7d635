"""The JSON API blueprint at /api/v1.0."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1.0")
