"""The BCX web app: ``create_app()`` builds the Flask app with its API and pages blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask

from bcx import config as configmod
from bcx.keys import Keys
from bcx.redisconn import from_config
from bcx.store import Channels
from web import sse


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` may carry ``BCX_CONFIG`` (a loaded
    :class:`bcx.config.Config`); otherwise the config is found as every command finds it
    ($BCX_CONF, /etc/bcx/bcx.conf, ./bcx.conf) and a bad one stops start-up with its message."""
    app = Flask(__name__, static_folder=None)
    if test_config:
        app.config.update(test_config)
    cfg: configmod.Config = app.config.get("BCX_CONFIG") or configmod.load(
        app.config.get("BCX_CONFIG_PATH"))
    app.config["BCX_CONFIG"] = cfg
    app.config["BCX_KEYS"] = Keys(cfg.redis.prefix)
    # Flask's default is no limit; request bodies here are small rule documents.
    app.config["MAX_CONTENT_LENGTH"] = app.config.get("MAX_CONTENT_LENGTH") or 64 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # One client per app from the factory every process uses (standalone, cluster or
    # Sentinel); its pool is shared by the app's threads, and it connects on first use.
    app.extensions["redis"] = from_config(cfg.redis, client_name="bcx-web")
    # The live streams of this process share one Redis subscription (web/sse.py).
    app.extensions["sse_hub"] = sse.Hub(Channels(app.extensions["redis"], app.config["BCX_KEYS"]),
                                        app.config["BCX_KEYS"], cfg.web.max_streams,
                                        cfg.redis.socket_timeout)

    from web import cors, errors, metrics
    from web.api import bp as api_bp
    from web.pages import bp as pages_bp

    errors.init_app(app)
    metrics.init_app(app)
    cors.init_app(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(pages_bp)
    return app
