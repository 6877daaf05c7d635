"""JSON errors for the API: ``{"error": {"status": 400, "message": "…"}}``, never a traceback.
Redis being unreachable is a 503 the client can retry, not a 500."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def error_response(status: int, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"error": {"status": status, "message": message, **extra}}), status


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[Response, int]:
        if exc.response is not None:  # already a complete response (e.g. 401 with its header)
            return exc.response
        response, status = error_response(exc.code or 500, exc.description or exc.name)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError) -> tuple[Response, int]:
        log.warning("Redis error answering a request: %s", exc)
        response, status = error_response(503, "Redis is unavailable; try again shortly")
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, InternalServerError.description)
