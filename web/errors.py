"""JSON errors for the API: ``{"error": {"status": 400, "message": "…"}}``, never a traceback.
Redis being unreachable is a 503 the client can retry, not a 500. A Redis misconfiguration
(``bcx.store.errors.advice``) is a 503 too, since no client can fix it; the operator reads
what to change in the log, at ERROR, at most once per ``ADVICE_EVERY`` seconds."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from flask import Flask, Response, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from bcx.store import errors as redis_errors

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
ADVICE_EVERY = 60.0  # seconds between two log lines of the same misconfiguration


class AdviceLog:
    """Logs each distinct advice at ERROR at most once per ``every`` seconds (a request
    rate of errors must not flood the log)."""

    def __init__(self, every: float = ADVICE_EVERY):
        self.every = every
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, advice: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(advice)
            if last is not None and now - last < self.every:
                return
            self._last[advice] = now
        log.error("Redis is misconfigured: %s", advice)


def error_response(status: int, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"error": {"status": status, "message": message, **extra}}), status


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        if exc.response is not None:  # already a complete response (e.g. 401 with its header)
            return exc.response
        response, status = error_response(exc.code or 500, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    advise = AdviceLog()

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError) -> tuple[Response, int]:
        advice = redis_errors.advice(exc)
        if advice is not None:
            advise(advice)
            message = "the server's Redis is misconfigured; its operator has to fix it"
        else:
            log.warning("Redis error answering a request: %s", exc)
            message = "Redis is unavailable; try again shortly"
        response, status = error_response(503, message)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, InternalServerError.description)
