"""Gap fill and history import against local servers (issue 18): the replay server drops the
websocket mid-stream and resumes a minute of trades later; its REST side serves the missed
trades, so every trade of the session ends in Redis exactly once (also when it answers 429
first). ``bcx backfill`` imports 30 days of 1 m candles that /ohlc then serves; a second run
adds nothing; an interrupted run resumes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bcx import config as configmod
from bcx import rest
from bcx.backfill import BackfillError, parse_ranges, run_import, subtract
from bcx.demo import session_lines
from bcx.keys import Keys
from bcx.replay import ReplayServer, load_session, rest_server
from bcx.rest.client import RestClient, RestError
from bcx.rest.server import GeneratedCandles, RestServer
from bcx.rollups import TRADES, Candle, imported_field, keep_imported
from bcx.store import Stores
from bcx.ticks import parse_trade_member
from bcx.tracker.run import Tracker, tracker_client
from tests.support import wait_for

keys = Keys("bcx")
PRODUCTS = ("BTC-USD", "ETH-USD")
# Frames of the demo session: 18 a second (2 products x 4 matches and 4 tickers, and 2
# heartbeats). The first connection is dropped after CLOSE_AFTER frames, the next one starts
# a minute of recorded time later.
CLOSE_AFTER = 500
RESUME_AT = CLOSE_AFTER + 60 * 18
ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, redis_url: str, ws_url: str, rest_url: str) -> Path:
    path = tmp_path / "bcx.conf"
    path.write_text("\n".join([
        "[redis]", f"url = {redis_url}", "[tracker]", "exchanges = coinbase",
        "backfill = yes", "backfill_max_age = 10y", "flush_interval = 20ms",
        "backoff_initial = 50ms", "backoff_max = 200ms", "stats_interval = 100ms",
        "[exchange:coinbase]", f"url = {ws_url}", f"rest_url = {rest_url}",
        f"symbols = {' '.join(PRODUCTS)}", "[watcher]", "rollups = 1m:90d 1h:5y"]) + "\n")
    return path


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[ReplayServer, Any]]:
    """A Coinbase session with matches whose first connection drops a minute of trades,
    and the REST side serving every trade of it."""
    path = tmp_path / "coinbase_demo.session.jsonl"
    path.write_text("\n".join(session_lines(matches=True)) + "\n")
    session = load_session(path)
    ws = ReplayServer(session, speed=0, close_after=CLOSE_AFTER, resume_at=RESUME_AT)
    ws.start()
    yield ws, session
    ws.stop()


def session_ids(session: Any) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {product: set() for product in PRODUCTS}
    for frame in session.body:
        msg = json.loads(frame.raw)
        if msg.get("type") == "match":
            ids[msg["product_id"]].add(str(msg["trade_id"]))
    return ids


def stored_ids(r: Any) -> dict[str, Counter[str]]:
    return {product: Counter(parse_trade_member(m).id
                             for m in r.zrange(keys.trades("coinbase", product), 0, -1))
            for product in PRODUCTS}


@pytest.mark.parametrize("throttle", [0, 1], ids=["plain", "429-first"])
def test_outage_is_filled_from_rest_exactly_once(outage, tmp_path, r, redis_url, throttle):
    ws, session = outage
    rest_side = rest_server(session, throttle_first=throttle, retry_after=1)
    rest_side.start()
    config = configmod.load(str(write_config(tmp_path, redis_url, ws.url, rest_side.url)),
                            env={})
    tracker = Tracker(config, tracker_client(config))
    started = time.monotonic()
    tracker.start()
    try:
        expected = session_ids(session)
        stats = tracker.stats[0]

        def complete() -> bool:
            stored = stored_ids(r)
            return all(set(stored[p]) == expected[p] for p in PRODUCTS)

        wait_for(complete, timeout=60, message="every trade of the session in Redis")
        took = time.monotonic() - started
        stored = stored_ids(r)
        assert all(count == 1 for p in PRODUCTS for count in stored[p].values())
        missed = sum(len(expected[p]) for p in PRODUCTS) - stats.trades
        assert ws.connections >= 2 and missed > 0
        assert stats.backfilled >= missed and stats.backfill_gaps >= len(PRODUCTS)
        assert stats.gaps_open == 0
        assert rest_side.throttled == throttle
        wait_for(lambda: r.hget(keys.tracker_stats("coinbase"), "backfilled")
                 == str(stats.backfilled), message="stats written")
        print(f"outage of {RESUME_AT - CLOSE_AFTER} frames: {missed} trades missed, "
              f"{stats.backfilled} backfilled, all stored {took:.2f}s after start")
    finally:
        tracker.stop()
        rest_side.stop()


def test_old_gap_is_left_open(outage, tmp_path, r, redis_url):
    """A gap older than backfill_max_age is counted open and never fetched."""
    ws, session = outage
    with rest_server(session) as rest_side:
        path = write_config(tmp_path, redis_url, ws.url, rest_side.url)
        path.write_text(path.read_text().replace("backfill_max_age = 10y",
                                                 "backfill_max_age = 1h"))
        config = configmod.load(str(path), env={})
        tracker = Tracker(config, tracker_client(config))
        tracker.start()
        try:
            stats = tracker.stats[0]
            wait_for(lambda: stats.gaps_open >= len(PRODUCTS), message="gaps left open")
            assert stats.backfilled == 0 and not rest_side.requests
        finally:
            tracker.stop()


def test_client_gives_up_on_a_long_ban():
    """A Retry-After past the longest wait fails the request instead of sleeping for it."""
    with RestServer("binance", throttle_first=5, retry_after=3600) as server:
        client = RestClient(server.url, (10.0, 10.0))
        with pytest.raises(RestError, match="rate limited"):
            client.fetch(rest.venue("binance").candles_request("BTC-USDT", 60, 0, 60_000))
        assert server.throttled == 1


# --------------------------------------------------------------------------- bcx backfill
DAY_MS = 86_400_000


@pytest.fixture
def venue_rest() -> Iterator[RestServer]:
    with RestServer("binance", candles=GeneratedCandles()) as server:
        yield server


def test_backfill_imports_30_days_resumes_and_adds_nothing_twice(venue_rest, tmp_path, r,
                                                                 redis_url):
    now = time.time_ns() // 1_000_000 // 60_000 * 60_000
    start, end = now - 30 * DAY_MS, now
    ws_url = "ws://127.0.0.1:9"  # never connected: only the REST side is used
    config = write_config(tmp_path, redis_url, ws_url, venue_rest.url)
    config.write_text(config.read_text().replace("exchanges = coinbase", "exchanges = binance")
                      .replace("[exchange:coinbase]", "[exchange:binance]"))
    stores = Stores.open(r, keys)
    venue = rest.venue("binance")
    client = RestClient(venue_rest.url, venue.RATE)

    # Interrupted after 10 pages (the 11th request fails): those pages are kept.
    pages = []

    def interrupt(done: int, total: int) -> None:
        pages.append(done)
        if len(pages) > 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_import(stores, client, venue, "binance", "BTC-USDT", 60, start, end, [60, 3600],
                   interrupt)
    partial = r.zcard(keys.rollup("binance", "BTC-USDT", TRADES, 60))
    assert partial == 10 * venue.CANDLES_LIMIT - _missing(start, start + 10_000 * 60_000)
    requests_before = len(venue_rest.requests)

    result = subprocess.run(
        [sys.executable, "-m", "bcx.cli", "backfill", "binance:BTC-USDT", "--start", str(start),
         "--end", str(end), "--config", str(config), "--progress"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    buckets = 30 * 24 * 60
    missing = _missing(start, end)
    assert f"{buckets - missing - partial} candles of 60s imported" in result.stdout
    assert f"{partial + _missing(start, start + 10_000 * 60_000)} already imported" \
        in result.stdout
    assert f"the venue had no candle for {missing - _missing(start, start + 10_000 * 60_000)}" \
        in result.stdout
    # Only the rest of the range was asked for.
    assert len(venue_rest.requests) - requests_before == -(-(buckets - 10_000) // 1000)
    for field in ("price", TRADES):
        assert r.zcard(keys.rollup("binance", "BTC-USDT", field, 60)) == buckets - missing
    assert parse_ranges(r.hget(keys.watermark("binance", "BTC-USDT"),
                               imported_field(TRADES, 60))) == [(start, end)]

    # /ohlc serves them (the API's own reader over the roll-ups).
    from bcx import aggregate

    got = aggregate.candles(stores.rollups, stores.ticks, "binance", "BTC-USDT", "price", 60,
                            end - DAY_MS, end - 1, [60, 3600])
    assert got["source"] != "raw" and got["count"] == 1440 - _missing(end - DAY_MS, end)
    first = GeneratedCandles().candle(got["candles"][0][0], 60)
    assert got["candles"][0][1:5] == [float(first.open), float(first.high), float(first.low),
                                      float(first.close)]

    # A second run asks for nothing and adds nothing.
    requests_before = len(venue_rest.requests)
    report = run_import(stores, client, venue, "binance", "BTC-USDT", 60, start, end,
                        [60, 3600])
    assert report.imported == 0 and report.requests == 0 and report.already == buckets
    assert len(venue_rest.requests) == requests_before
    assert r.zcard(keys.rollup("binance", "BTC-USDT", TRADES, 60)) == buckets - missing


def _missing(start: int, end: int) -> int:
    """Buckets of [start, end) the generated venue has no candle for."""
    candles = GeneratedCandles()
    return sum(1 for b in range(start, end, 60_000) if candles.candle(b, 60) is None)


def test_backfill_keeps_live_buckets_and_refuses_unknown_intervals(venue_rest, r):
    stores = Stores.open(r, keys)
    venue = rest.venue("binance")
    client = RestClient(venue_rest.url, venue.RATE)
    now = time.time_ns() // 1_000_000 // 60_000 * 60_000
    start = now - 3_600_000
    live = Candle(start, "1", "2", "1", "2", 5, "9", "18", "4")
    stores.rollups.import_candles("binance", "ETH-USDT", TRADES, 60, [live], {})
    report = run_import(stores, client, venue, "binance", "ETH-USDT", 60, start, now, [60])
    assert report.kept_live == 1
    stored = stores.rollups.candles("binance", "ETH-USDT", TRADES, 60, start, start)
    assert stored == [live]
    with pytest.raises(BackfillError, match="not 7s"):
        run_import(stores, client, venue, "binance", "ETH-USDT", 7, start, now, [60])


def test_live_rollup_never_overwrites_a_fuller_imported_bucket():
    imported = Candle(0, "1", "3", "1", "2", 40, "10", "20", "", imported=True)
    thin = Candle(0, "1", "2", "1", "2", 3, "0.5", "1", "0")
    full = Candle(0, "1", "2", "1", "2", 45, "12", "24", "6")
    alone = Candle(60_000, "5", "5", "5", "5", 1, "1", "5", "1", imported=True)
    assert keep_imported([thin], [imported, alone]) == [imported, alone]
    assert keep_imported([full], [imported]) == [full]
    assert Candle.from_member(imported.member()) == imported
    assert subtract((0, 100), [(10, 20), (50, 200)]) == [(0, 10), (20, 50)]


def test_history_pass_keeps_an_imported_bucket_it_has_less_data_for(r):
    """The live roll-up of a minute that also has an imported bucket: two live trades do not
    replace the venue's forty; the next minute, imported from nothing, is rolled up live."""
    from dataclasses import replace

    from bcx.config import WatcherConfig
    from bcx.ticks import BUY, Trade
    from bcx.watcher.history import HistoryManager

    stores = Stores.open(r, keys)
    minute = 1_700_000_040_000
    venue_bucket = Candle(minute, "10", "12", "9", "11", 40, "10", "105", "", imported=True)
    stores.rollups.import_candles("binance", "BTC-USDT", TRADES, 60, [venue_bucket],
                                  {imported_field(TRADES, 60): f"{minute}-{minute + 60_000}"})
    trades = [Trade("binance", "BTC-USDT", minute + 1000 * i, "11", "0.5", BUY, str(i))
              for i in (1, 2)] + [Trade("binance", "BTC-USDT", minute + 61_000, "13", "1", BUY,
                                        "3")]
    stores.ticks.write([], trades)
    stores.registry.add(["binance:BTC-USDT"])
    manager = HistoryManager(stores.ticks, stores.rollups,
                             replace(WatcherConfig(), rollups=((60.0, 86400.0),)),
                             trades=stores.trades)
    manager.rollup_pass(minute + 180_000)
    stored = stores.rollups.candles("binance", "BTC-USDT", TRADES, 60)
    assert stored[0] == venue_bucket
    assert stored[1].start_ms == minute + 60_000 and not stored[1].imported


@pytest.mark.parametrize("exchange,symbol", [("coinbase", "BTC-USD"), ("binance", "BTC-USDT"),
                                             ("bitfinex", "BTC-USD"), ("kraken", "BTC-USD")])
def test_each_venue_pages_a_hole_through_its_replay_endpoints(exchange, symbol):
    """Each venue's request builder and reader against the replay's answers in that venue's
    format: every trade inside the hole comes back once, identical to the one served, over
    more than one page where the venue pages at 1000."""
    from bcx.rest import Hole
    from bcx.ticks import BUY, SELL, Trade

    venue = rest.venue(exchange)
    base = 1_700_000_000_000
    trades = [Trade(exchange, symbol, base + 10 * i, f"{100 + i}.5", "0.25",
                    BUY if i % 2 else SELL,
                    f"{(base + 10 * i) / 1000:.3f}-0" if exchange == "kraken" else str(1000 + i))
              for i in range(2500)]
    with RestServer(exchange, trades) as server:
        client = RestClient(server.url, (1000.0, 1000.0))
        hole = Hole(exchange, symbol, trades[10].ms, trades[10].id, trades[2400].ms,
                    trades[2400].id)
        got, cursor = [], None
        while True:
            body, headers = client.fetch(venue.trades_request(hole, cursor))
            page, cursor = venue.read_trades(hole, body, headers)
            got += page
            if cursor is None:
                break
    assert sorted(got, key=lambda t: t.ms) == trades[11:2400]
    assert len(server.requests) == (1 if exchange == "bitfinex" else 3)
