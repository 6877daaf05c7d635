"""``bcx web``: the app on Werkzeug's threaded development server (production runs gunicorn
with ``web/gunicorn_conf.py``)."""

from __future__ import annotations

from bcx.config import Config
from web import create_app


def run(cfg: Config, bind: str | None = None, debug: bool = False) -> None:
    host, _, port = (bind or cfg.web.bind).rpartition(":")
    app = create_app({"BCX_CONFIG": cfg})
    # threaded: each SSE client holds a thread while the others keep answering.
    app.run(host=host.strip("[]"), port=int(port), debug=debug, threaded=True,
            use_reloader=debug)
