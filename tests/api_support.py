"""Fixtures and helpers of the API tests: a config pointing at the test redis-server, the app,
its test client, Redis loaded from the Coinbase recording, and a live loopback HTTP server."""

from __future__ import annotations

import configparser
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

from bcx import config as configmod
from bcx.keys import Keys
from bcx.rollups import Candle, watermark_field
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import parse_instant
from tests.conftest import DATA
from tests.support import recv_frames

TOKEN = "s3cret-token"
RECORDING = DATA / "coinbase_ticker.session.jsonl"


def make_config(redis_url: str, mode: str = "standalone", **web: str) -> configmod.Config:
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    parser.read_dict({"redis": {"url": redis_url, "mode": mode},
                      "web": {"api_token": TOKEN, "sse_keepalive": "1s", **web}})
    return configmod.from_parser(parser, "test", env={})


def coinbase_ticks() -> list[Tick]:
    """The ticker frames of the recorded Coinbase session as ticks (price, best bid/ask at
    the exchange's own time), without depending on the tracker's adapter."""
    ticks = []
    for _, raw in recv_frames(RECORDING):
        frame = json.loads(raw)
        if frame.get("type") == "ticker":
            ticks.append(Tick("coinbase", frame["product_id"], parse_instant(frame["time"]),
                              frame["price"], frame["best_bid"], frame["best_ask"],
                              frame["sequence"]))
    return ticks


def write_candles(connection: redis.Redis, keys: Keys, exchange: str, symbol: str, field: str,
                  interval_s: int, candles: list[Candle], watermark_ms: int) -> None:
    """Roll-ups as the watcher writes them, made directly from their member encoding."""
    pipe = connection.pipeline()
    pipe.zadd(keys.rollup(exchange, symbol, field, interval_s),
              {candle.member(): candle.start_ms / 1000 for candle in candles})
    pipe.hset(keys.watermark(exchange, symbol), watermark_field(field, interval_s),
              watermark_ms)
    pipe.execute()


@pytest.fixture
def cfg(request: pytest.FixtureRequest, redis_url: str) -> configmod.Config:
    """The app's config; on the ``backend`` where the module runs on both (see ``r``)."""
    if "backend" in request.fixturenames:
        backend = request.getfixturevalue("backend")
        return make_config(backend.url, mode=backend.mode)
    return make_config(redis_url)


@pytest.fixture
def app(cfg: configmod.Config) -> Flask:
    return create(cfg)


def create(cfg: configmod.Config) -> Flask:
    from web import create_app

    return create_app({"BCX_CONFIG": cfg, "TESTING": True})


@pytest.fixture
def client(app: Flask, r: redis.Redis) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def recorded(r: redis.Redis, keys: Keys) -> list[Tick]:
    """Redis holding the recorded Coinbase session, written through the store."""
    ticks = coinbase_ticks()
    Store(r, keys).write(ticks)
    return ticks


@dataclass
class LiveServer:
    url: str
    server: BaseWSGIServer


@pytest.fixture
def live_server(app: Flask, r: redis.Redis) -> Iterator[LiveServer]:
    """The app on a threaded Werkzeug server on a free loopback port, shut down after."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield LiveServer(f"http://127.0.0.1:{server.server_port}", server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == response.status_code
    return body["error"]
