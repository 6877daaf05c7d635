"""OHLCV roll-ups of trades, volume in /ohlc and /stats, exact stats on a young install, the
volume and trade_size rules, and retention of the trade keys.

Trades come from the recordings through ``tests.trackerkit.expected_trades`` (read without the
adapters) and are written with TradeStore; expected figures are computed here with
``decimal.Decimal`` alone."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from bcx import aggregate, events
from bcx import config as configmod
from bcx.config import WatcherConfig
from bcx.events import TriggerEvent
from bcx.keys import Keys
from bcx.rollups import Candle, candles_from_trades, fold_candles
from bcx.store import RollupStore, Store, TradeStore
from bcx.ticks import Tick, Trade, TradeFields, parse_trade_member, trade_member
from bcx.watcher.archive import Archive
from bcx.watcher.history import HistoryManager
from bcx.watcher.rules import RuleEngine
from tests.api_support import coinbase_ticks, make_config
from tests.archive_support import dataset_rows
from tests.cluster_support import Backend
from tests.trackerkit import expected_trades


@pytest.fixture
def r(backend: Backend) -> Iterator[Any]:
    """Every test here runs on the standalone server and on the cluster."""
    client = backend.client()
    yield client
    client.close()


@pytest.fixture
def cfg(backend: Backend) -> configmod.Config:
    return make_config(backend.url, mode=backend.mode)


MINUTE = 60_000
HOUR = 3_600_000
ROLLUPS = ((60.0, 86400.0), (3600.0, 86400.0))
SERIES = ("binance", "DENT-USDT")


def recorded(symbol: str = "DENT-USDT", native: str = "DENTUSDT") -> list[Trade]:
    """The DENTUSDT trades of the Binance recording (716 of them over two minutes)."""
    return [Trade("binance", symbol, ms, price, size, side, trade_id)  # type: ignore[arg-type]
            for (name, trade_id), (ms, price, size, side)
            in expected_trades("binance_bookticker").items() if name == native]


def redis_order(trades: list[Trade]) -> list[Trade]:
    """As the sorted set orders them: by time, then by member."""
    return sorted(trades, key=lambda t: (t.ms, trade_member(t)))


def by_bucket(trades: list[Trade], width: int) -> dict[int, list[Trade]]:
    out: dict[int, list[Trade]] = defaultdict(list)
    for trade in redis_order(trades):
        out[trade.ms // width * width].append(trade)
    return out


def expected(trades: list[Trade]) -> dict[str, Any]:
    """Volume figures computed directly with Decimal."""
    volume = sum((Decimal(t.size) for t in trades), Decimal(0))
    quote = sum((Decimal(t.price) * Decimal(t.size) for t in trades), Decimal(0))
    buy = sum((Decimal(t.size) for t in trades if t.side == "buy"), Decimal(0))
    return {"volume": float(volume), "quote_volume": float(quote), "buy_volume": float(buy),
            "trades": len(trades), "vwap": float(quote / volume) if volume else None}


def load(r: redis.Redis, keys: Keys, trades: list[Trade]) -> None:
    """The trades, and a price tick per trade so the series exists and has price candles."""
    TradeStore(r, keys).write(trades)
    Store(r, keys).write([Tick(t.exchange, t.symbol, t.ms, price=t.price) for t in trades])


def roll(r: redis.Redis, keys: Keys, now_ms: int, rollups: Any = ROLLUPS) -> None:
    config = replace(WatcherConfig(), rollups=rollups)
    HistoryManager(Store(r, keys), RollupStore(r, keys), config).rollup_pass(now_ms)


def api(client: FlaskClient, path: str, symbol: str = "DENT-USDT", **query: Any) -> Any:
    response = client.get(f"/api/v1.0/series/binance/{symbol}/{path}", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# --------------------------------------------------------------------------- OHLCV figures
def check_minutes(client: FlaskClient, trades: list[Trade]) -> None:
    minutes = by_bucket(trades, MINUTE)
    first, last = min(minutes), max(t.ms for t in trades)
    body = api(client, "ohlc", interval="1m", start=first, end=last)
    assert {row[0]: row[5] for row in body["candles"]} == {
        start: expected(group)["volume"] for start, group in minutes.items()}
    prices: dict[int, set[tuple[int, str]]] = defaultdict(set)
    for trade in trades:
        prices[trade.ms // MINUTE * MINUTE].add((trade.ms, trade.price))
    assert body["ticks"] == [len(prices[row[0]]) for row in body["candles"]]
    for start, group in minutes.items():
        stats = api(client, "stats", start=start, end=start + MINUTE - 1)
        assert {name: stats[name] for name in expected(group)} == expected(group)


def test_minute_volume_count_and_vwap_from_the_api_equal_decimal_sums(
        client: FlaskClient, r: redis.Redis, keys: Keys,
        monkeypatch: pytest.MonkeyPatch) -> None:
    trades = recorded()
    assert len(by_bucket(trades, MINUTE)) >= 2
    load(r, keys, trades)
    check_minutes(client, trades)  # from raw trades alone
    roll(r, keys, max(t.ms for t in trades) + 10 * MINUTE)
    body = api(client, "ohlc", interval="1m", start=min(t.ms for t in trades),
               end=max(t.ms for t in trades))
    assert body["source"] == "rollup:60"
    check_minutes(client, trades)  # volumes from the roll-up
    monkeypatch.setattr(aggregate, "STATS_RAW_MAX", 0)
    check_minutes(client, trades)  # stats from whole minute buckets too


def test_stored_minute_buckets_are_exact_ohlcv(r: redis.Redis, keys: Keys) -> None:
    trades = recorded()
    load(r, keys, trades)
    roll(r, keys, max(t.ms for t in trades) + 10 * MINUTE)
    stored = RollupStore(r, keys).candles(*SERIES, "trades", 60)
    for candle, (start, group) in zip(stored, sorted(by_bucket(trades, MINUTE).items()),
                                      strict=True):
        figures = expected(group)
        assert (candle.start_ms, candle.open, candle.close, candle.count) == (
            start, group[0].price, group[-1].price, len(group))
        assert Decimal(candle.high) == max(Decimal(t.price) for t in group)
        assert Decimal(candle.low) == min(Decimal(t.price) for t in group)
        assert Decimal(candle.volume) == sum(Decimal(t.size) for t in group)  # exact
        assert Decimal(candle.quote) == sum(Decimal(t.price) * Decimal(t.size) for t in group)
        assert float(candle.vwap) == figures["vwap"]  # type: ignore[arg-type]


def test_hourly_ohlcv_is_the_merge_of_minutes_and_equals_a_rollup_from_trades(
        r: redis.Redis, keys: Keys) -> None:
    trades = recorded() + [replace(t, ms=t.ms + 20 * MINUTE) for t in recorded()]
    load(r, keys, trades)
    straight = [replace(t, symbol="DENT-BUSD") for t in trades]
    load(r, keys, straight)
    now = max(t.ms for t in trades) + HOUR + 10 * MINUTE
    roll(r, keys, now)
    store = RollupStore(r, keys)
    hours = store.candles(*SERIES, "trades", 3600)
    minutes = store.candles(*SERIES, "trades", 60)
    assert len(minutes) >= 4 and hours == [
        fold_candles(start, [m for m in minutes if m.start_ms // HOUR * HOUR == start])
        for start in sorted({m.start_ms // HOUR * HOUR for m in minutes})]
    # The same hour rolled up straight from trades (no minute roll-up configured) ...
    HistoryManager(Store(r, keys), store, replace(WatcherConfig(), rollups=((3600.0, 86400.0),))
                   ).rollup(SERIES[0], "DENT-BUSD", "trades", 3600, now)
    assert store.candles(SERIES[0], "DENT-BUSD", "trades", 3600) == hours
    # ... and computed purely from the trades as Redis orders them.
    fields = [parse_trade_member(trade_member(t)) for t in redis_order(trades)]
    assert candles_from_trades(fields, 3600) == hours


def test_first_and_last_millisecond_and_mixed_digit_counts(
        client: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    t0 = 1_700_000_000_000 // HOUR * HOUR
    trades = [Trade("binance", "DENT-USDT", t0, "9.5", "0.5", "buy", "1"),
              Trade("binance", "DENT-USDT", t0 + 30_000, "10", "2", "sell", "2"),
              Trade("binance", "DENT-USDT", t0 + MINUTE - 1, "9.75", "1.25", "buy", "3"),
              Trade("binance", "DENT-USDT", t0 + MINUTE, "100", "7", "buy", "4")]
    load(r, keys, trades)
    roll(r, keys, t0 + 10 * MINUTE)
    first, second = RollupStore(r, keys).candles(*SERIES, "trades", 60)
    # "10" is above "9.5" although it sorts before it as text; volumes are exact.
    assert first == Candle(t0, "9.5", "10", "9.5", "9.75", 3, "3.75", "36.9375", "1.75")
    assert first.vwap == Decimal("36.9375") / Decimal("3.75")
    assert second == Candle(t0 + MINUTE, "100", "100", "100", "100", 1, "7", "700", "7")
    stats = api(client, "stats", start=t0, end=t0 + MINUTE - 1)
    assert (stats["trades"], stats["volume"], stats["quote_volume"], stats["buy_volume"]) == (
        3, 3.75, 36.9375, 1.75)
    assert stats["vwap"] == float(Decimal("36.9375") / Decimal("3.75"))
    candles = api(client, "ohlc", interval="1m", start=t0, end=t0 + MINUTE)["candles"]
    assert candles == [[t0, 9.5, 10, 9.5, 9.75, 3.75], [t0 + MINUTE, 100, 100, 100, 100, 7]]


def test_bid_and_ask_candles_keep_five_elements(client: FlaskClient, r: redis.Redis,
                                                keys: Keys) -> None:
    Store(r, keys).write([Tick("binance", "DENT-USDT", 1_700_000_000_000, bid="1", ask="2")])
    body = api(client, "ohlc", field="bid", interval="1m", start=1_700_000_000_000 - MINUTE,
               end=1_700_000_000_000)
    assert body["candles"] == [[1_700_000_000_000 // MINUTE * MINUTE, 1, 1, 1, 1]]


# --------------------------------------------------------------------------- stats exactness
def test_stats_are_exact_on_a_young_install(client: FlaskClient, r: redis.Redis,
                                            keys: Keys) -> None:
    """The range reaches before the first tick and roll-ups exist: every tick is still raw,
    so the figures are exact, not bucket approximations."""
    ticks = [t for t in coinbase_ticks() if t.symbol == "SKL-USD"]
    Store(r, keys).write(ticks)
    last = max(t.ms for t in ticks)
    roll(r, keys, last + 10 * MINUTE)
    body = client.get("/api/v1.0/series/coinbase/SKL-USD/stats",
                      query_string={"start": last - 86_400_000, "end": last}).get_json()
    points = sorted({(t.ms, t.price) for t in ticks})
    values = [float(price) for _, price in points]
    assert body["source"] == "raw" and body["approximate"] is False
    assert body["count"] == len(points)
    assert body["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert body["std"] == pytest.approx(statistics.pstdev(values), rel=1e-9)
    assert (body["first_time"], body["last_time"]) == (points[0][0], points[-1][0])
    bids = {(t.ms, t.bid) for t in ticks}
    asks = {(t.ms, t.ask) for t in ticks}
    assert body["spread"]["min"] == float(min(
        Decimal(a) - Decimal(b) for (ms, b) in bids for (ms2, a) in asks if ms == ms2))
    for name in ("min", "max", "last"):
        value = body["spread"][name]
        assert value == float(Decimal(repr(value)).quantize(Decimal("0.00000001"))), (
            name, value)  # no float noise such as 0.00999999999476


def test_spread_figures_are_decimal_exact(client: FlaskClient, r: redis.Redis,
                                          keys: Keys) -> None:
    t0 = 1_700_000_000_000
    Store(r, keys).write([Tick("binance", "DENT-USDT", t0, price="63248.00", bid="63248.00",
                               ask="63248.01"),
                          Tick("binance", "DENT-USDT", t0 + 1000, bid="63248.02",
                               ask="63248.05")])
    spread = api(client, "stats", start=t0, end=t0 + 1000)["spread"]
    assert spread == {"count": 2, "min": 0.01, "max": 0.03, "mean": 0.02, "last": 0.03}


def test_stats_of_trimmed_history_stay_approximate(client: FlaskClient, r: redis.Redis,
                                                   keys: Keys) -> None:
    ticks = [t for t in coinbase_ticks() if t.symbol == "SKL-USD"]
    Store(r, keys).write(ticks)
    last = max(t.ms for t in ticks)
    roll(r, keys, last + 10 * MINUTE)
    assert Store(r, keys).trim("coinbase", "SKL-USD", "price", last - 10_000) > 0
    body = client.get("/api/v1.0/series/coinbase/SKL-USD/stats",
                      query_string={"start": last - 86_400_000, "end": last}).get_json()
    assert body["approximate"] is True and body["count"] > 0


# --------------------------------------------------------------------------- rules
T0 = 1_617_647_600_000


def engine_for(tmp_path: Path, r: redis.Redis, keys: Keys, rules: str) -> RuleEngine:
    path = tmp_path / "bcx.conf"
    path.write_text(rules)
    engine = RuleEngine(r, keys, configmod.load(str(path), env={}), started_ms=T0)
    engine.start()
    return engine


def fired(r: redis.Redis, keys: Keys) -> list[tuple[str, str, int]]:
    found = [TriggerEvent.from_json(fields["event"])
             for _, fields in r.xrange(keys.events_stream)]
    return [(e.rule, e.state, e.time) for e in found]


def publish_form(trade: Trade) -> str:
    return json.dumps([{"series": f"{trade.exchange}:{trade.symbol}", "time": trade.ms,
                        "price": trade.price, "size": trade.size, "side": trade.side,
                        "id": trade.id}])


def test_trade_size_fires_on_a_trade_at_the_threshold_and_resolves_on_a_smaller_one(
        tmp_path: Path, r: redis.Redis, keys: Keys) -> None:
    trades = redis_order(recorded())
    biggest = max(range(len(trades)), key=lambda i: Decimal(trades[i].size))
    size = Decimal(trades[biggest].size)
    assert biggest + 1 < len(trades) and Decimal(trades[biggest + 1].size) < size
    engine = engine_for(tmp_path, r, keys, (
        f"[rule:at]\nkind = trade_size\nseries = binance:DENT-USDT\nthreshold = {size}\n"
        "cooldown = 0\n"
        f"[rule:over]\nkind = trade_size\nseries = binance:DENT-USDT\n"
        f"threshold = {size + Decimal('0.00000001')}\ncooldown = 0\n"))
    load(r, keys, trades)
    for trade in trades[:biggest + 2]:
        engine.on_trades(publish_form(trade), trade.ms)
        engine.periodic(trade.ms)  # no trade in a pass: no change
    assert fired(r, keys) == [("conf:at", events.FIRING, trades[biggest].ms),
                              ("conf:at", events.RESOLVED, trades[biggest + 1].ms)]


def test_volume_fires_at_the_threshold_and_resolves_when_the_window_moves_on(
        tmp_path: Path, r: redis.Redis, keys: Keys) -> None:
    trades = recorded()
    last = max(t.ms for t in trades)
    window = [t for t in trades if t.ms > last - MINUTE]
    volume = sum((Decimal(t.size) for t in window), Decimal(0))
    engine = engine_for(tmp_path, r, keys, (
        f"[rule:at]\nkind = volume\nseries = binance:DENT-USDT\nwindow = 60s\n"
        f"threshold = {volume}\ncooldown = 0\n"
        f"[rule:over]\nkind = volume\nseries = binance:DENT-USDT\nwindow = 60s\n"
        f"threshold = {volume + Decimal('0.00000001')}\ncooldown = 0\n"))
    load(r, keys, trades)
    roll(r, keys, last + 10_000)  # roll-ups present: the engine must still sum exactly
    engine.on_ticks(json.dumps([{"series": "binance:DENT-USDT", "time": last,
                                 "price": "1"}]), last)  # ticks do not evaluate volume
    assert fired(r, keys) == []
    engine.periodic(last)
    engine.periodic(last + 2 * MINUTE)
    assert [(rule, state) for rule, state, _ in fired(r, keys)] == [
        ("conf:at", events.FIRING), ("conf:at", events.RESOLVED)]
    assert fired(r, keys)[0][2] == last and fired(r, keys)[1][2] == last + 2 * MINUTE


# --------------------------------------------------------------------------- retention
def test_trades_and_sizes_are_trimmed_archived_and_their_rollups_trimmed(
        tmp_path: Path, r: redis.Redis, keys: Keys) -> None:
    trades = recorded()
    load(r, keys, trades)
    r.zadd(keys.raw(*SERIES, "bid_size"), {f"{trades[0].ms}:12.5": trades[0].ms / 1000})
    last = max(t.ms for t in trades)
    roll(r, keys, last + 10 * MINUTE)
    now = last + 2 * 86_400_000
    config = replace(WatcherConfig(), rollups=ROLLUPS, raw_retention=86400.0)
    HistoryManager(Store(r, keys), RollupStore(r, keys), config,
                   archive=Archive(tmp_path)).trim_pass(now)
    assert r.zcard(keys.trades(*SERIES)) == 0 and r.zcard(keys.raw(*SERIES, "bid_size")) == 0
    assert r.zcard(keys.rollup(*SERIES, "trades", 60)) == 0
    rows = {(ms, field, value) for *_, ms, field, value in dataset_rows(tmp_path)}
    assert {row for row in rows if row[1] == "trades"} == {
        (t.ms, "trades", trade_member(t).partition(":")[2]) for t in trades}
    assert (trades[0].ms, "bid_size", "12.5") in rows


def test_tradefields_fold_matches_direct_figures() -> None:
    fields = [TradeFields(0, "9.5", "0.5", "buy", "a"), TradeFields(1, "10", "2", "sell", "b")]
    (candle,) = candles_from_trades(fields, 60)
    assert (candle.volume, candle.quote, candle.buy) == ("2.5", "24.75", "0.5")


@pytest.mark.parametrize("kind", ["volume", "trade_size"])
def test_trade_rules_are_taken_by_the_api_with_a_positive_threshold(
        client: FlaskClient, r: redis.Redis, keys: Keys, kind: str) -> None:
    from tests.api_support import TOKEN

    load(r, keys, recorded()[:3])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rule = {"name": f"big-{kind}", "kind": kind, "series": "binance:DENT-USDT",
            "threshold": 1000, "window": "5m"}
    response = client.post("/api/v1.0/rules", json=rule, headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["kind"] == kind
    response = client.post("/api/v1.0/rules", json={**rule, "name": "zero", "threshold": 0},
                           headers=auth)
    assert response.status_code == 400
    assert response.get_json()["error"]["parameter"] == "threshold"
