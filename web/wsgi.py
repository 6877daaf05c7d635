"""The WSGI entry point for gunicorn: ``web.wsgi:app``, configured as every command is
($BCX_CONF, /etc/bcx/bcx.conf, ./bcx.conf)."""

from __future__ import annotations

from web import create_app

app = create_app()
