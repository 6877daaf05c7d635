"""Schemathesis, run from its CLI against the live app on loopback (Redis loaded from the
recorded Coinbase session, shifted to the present so the series are fresh, and every expected
component beating, so /health is 200):
no input may yield a 5xx, and every response must match /api/v1.0/openapi.json."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from werkzeug.serving import WSGIRequestHandler, make_server

from bcx.health import EXPECTED
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.store import Store
from bcx.timeutil import now_ms
from tests.api_support import TOKEN, coinbase_ticks, create, make_config

# Every check but positive_data_acceptance: start/end (epoch s, epoch ms or ISO-8601) and
# interval (60, 15m, 1h, ...) are free-form strings that no schema pattern describes exactly,
# so generated "valid" values such as "" are rightly refused. The rule document's schema and
# bcx.rulebook.parse_rule agree both ways (negative_data_rejection holds them to it).
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,unsupported_method,"
          "negative_data_rejection,missing_required_header,allow_header_conformance,"
          "ignored_auth")


class QuietHandler(WSGIRequestHandler):
    """No access log: the run makes hundreds of requests."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@pytest.fixture
def fresh_server(r: redis.Redis, keys: Keys, redis_url: str) -> Iterator[str]:
    ticks = coinbase_ticks()
    shift = now_ms() - max(tick.ms for tick in ticks)
    Store(r, keys).write([dataclasses.replace(tick, ms=tick.ms + shift) for tick in ticks])
    for component in EXPECTED:
        Heartbeat(r, keys, component, ttl=600).beat()
    app = create(make_config(redis_url, stale_after="1h"))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        fresh_server: str, tmp_path: Path) -> None:
    binary = Path(sys.executable).parent / "schemathesis"
    # /stream never ends, so it cannot be fuzzed; tests/test_api_stream.py covers it.
    command = [str(binary), "run", f"{fresh_server}/api/v1.0/openapi.json",
               "--checks", CHECKS, "--exclude-path", "/stream",
               "--max-examples", "25", "--seed", "20260417", "--phases",
               "examples,coverage,fuzzing", "--request-timeout", "10",
               "--header", f"Authorization: Bearer {TOKEN}",
               "--report", "junit", "--report-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
