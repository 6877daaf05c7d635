"""CORS for the JSON API: browsers on the origins of ``[web] cors_origins`` may read it (``*``:
any origin); with none configured no CORS header is sent, so other sites cannot. A preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) is answered by Flask's automatic OPTIONS
response, to which the allowed methods and headers are added."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

API_PREFIX = "/api/"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "Retry-After, WWW-Authenticate"
MAX_AGE_S = 600


def allowed_origin(origin: str | None, allowed: tuple[str, ...]) -> str | None:
    """The value of ``Access-Control-Allow-Origin`` for ``origin``, or None to send none."""
    if not origin or not allowed:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin.rstrip("/").lower() in {item.lower() for item in allowed} else None


def init_app(app: Flask) -> None:
    @app.after_request
    def cors(response: Response) -> Response:
        if not request.path.startswith(API_PREFIX):
            return response
        allowed: tuple[str, ...] = current_app.config["BCX_CONFIG"].web.cors_origins
        if allowed and "*" not in allowed:
            response.vary.add("Origin")  # the answer depends on who asks
        origin = allowed_origin(request.headers.get("Origin"), allowed)
        if origin is None:
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response.headers["Access-Control-Allow-Methods"] = response.headers.get(
                "Allow", "GET, POST, DELETE, OPTIONS")
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = str(MAX_AGE_S)
        return response
