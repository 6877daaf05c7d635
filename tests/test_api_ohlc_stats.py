"""Candles and statistics: from roll-ups where their watermark covers the range, from raw ticks
after it and for short ranges, against a real redis-server."""

from __future__ import annotations

import math

import pytest
import redis
from flask.testing import FlaskClient

from bcx import aggregate
from bcx.keys import Keys
from bcx.rollups import Candle
from bcx.store import Store
from bcx.ticks import Tick
from tests.api_support import error_of, write_candles

# Every test here runs on the standalone server and on the cluster (see conftest `r`).
pytestmark = pytest.mark.usefixtures("backend")


API = "/api/v1.0/series/coinbase/BTC-USD"
T0 = 1_700_000_040_000 // 3_600_000 * 3_600_000  # an hour boundary
MINUTE = 60_000


@pytest.fixture
def rolled(r: redis.Redis, keys: Keys, store: Store) -> None:
    """Ten 1-minute candles from T0 (watermark at T0 + 10 min) and raw ticks only after it,
    plus raw ticks before it that disagree with the candles, so a test sees which was read."""
    candles = [Candle(T0 + i * MINUTE, str(100 + i), str(105 + i), str(95 + i), str(101 + i), 10)
               for i in range(10)]
    write_candles(r, keys, "coinbase", "BTC-USD", "price", 60, candles, T0 + 10 * MINUTE)
    store.write([Tick("coinbase", "BTC-USD", T0 + 30_000, price="9999"),
                 Tick("coinbase", "BTC-USD", T0 + 10 * MINUTE + 5_000, price="200"),
                 Tick("coinbase", "BTC-USD", T0 + 10 * MINUTE + 50_000, price="190"),
                 Tick("coinbase", "BTC-USD", T0 + 11 * MINUTE + 1_000, price="210")])


def get(client: FlaskClient, path: str, **query: object) -> dict:
    response = client.get(f"{API}/{path}", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_ohlc_reads_rollups_up_to_the_watermark_then_raw_ticks(client: FlaskClient,
                                                               rolled: None) -> None:
    body = get(client, "ohlc", interval="1m", start=T0, end=T0 + 12 * MINUTE - 1)
    assert body["source"] == "rollup:60" and body["interval"] == 60
    assert body["candles"][:2] == [[T0, 100, 105, 95, 101, 0],
                                   [T0 + MINUTE, 101, 106, 96, 102, 0]]
    assert body["candles"][10:] == [[T0 + 10 * MINUTE, 200, 200, 190, 190, 0],
                                    [T0 + 11 * MINUTE, 210, 210, 210, 210, 0]]
    assert body["count"] == 12


def test_ohlc_merges_rollup_candles_into_a_longer_interval(client: FlaskClient,
                                                           rolled: None) -> None:
    body = get(client, "ohlc", interval="5m", start=T0, end=T0 + 15 * MINUTE - 1)
    assert body["candles"] == [[T0, 100, 109, 95, 105, 0],
                               [T0 + 5 * MINUTE, 105, 114, 100, 110, 0],
                               [T0 + 10 * MINUTE, 200, 210, 190, 210, 0]]


def test_ohlc_interval_that_fits_no_rollup_is_built_from_raw(client: FlaskClient,
                                                             rolled: None) -> None:
    body = get(client, "ohlc", interval="90s", start=T0, end=T0 + 12 * MINUTE)
    assert body["source"] == "raw"
    assert body["candles"][0] == [T0, 9999, 9999, 9999, 9999, 0]


def test_ohlc_without_rollups_is_built_from_raw(client: FlaskClient,
                                                recorded: list[Tick]) -> None:
    skl = [tick for tick in recorded if tick.symbol == "SKL-USD"]
    start = skl[0].ms // 10_000 * 10_000
    response = client.get("/api/v1.0/series/coinbase/SKL-USD/ohlc",
                          query_string={"interval": 10, "start": start, "end": skl[-1].ms})
    body = response.get_json()
    assert body["source"] == "raw"
    first_bucket = [float(t.price) for t in skl if t.ms < start + 10_000]
    assert body["candles"][0] == [start, first_bucket[0], max(first_bucket), min(first_bucket),
                                  first_bucket[-1], 0]
    assert sum(1 for _ in body["candles"]) == len({t.ms // 10_000 for t in skl})


def test_ohlc_default_interval_keeps_candles_few(client: FlaskClient, rolled: None) -> None:
    body = get(client, "ohlc", start=T0, end=T0 + 30 * 86_400_000)
    assert body["interval"] == 3600 and body["count"] <= aggregate.AUTO_CANDLES


def test_ohlc_too_many_candles_is_400_naming_interval(client: FlaskClient,
                                                      rolled: None) -> None:
    response = client.get(f"{API}/ohlc", query_string={"interval": "1s", "start": T0,
                                                       "end": T0 + 86_400_000})
    assert response.status_code == 400 and error_of(response)["parameter"] == "interval"


@pytest.mark.parametrize("interval", ["0", "1.5", "soon", "-60", "400d"])
def test_ohlc_bad_interval_is_400(client: FlaskClient, rolled: None, interval: str) -> None:
    response = client.get(f"{API}/ohlc", query_string={"interval": interval})
    assert response.status_code == 400 and error_of(response)["parameter"] == "interval"


def test_stats_of_a_short_range_are_exact_from_raw(client: FlaskClient, store: Store) -> None:
    store.write([Tick("coinbase", "BTC-USD", T0 + i * 1000, price=str(v), bid=str(v - 0.5),
                      ask=str(v + 0.5)) for i, v in enumerate([1, 2, 3, 4, 5])])
    body = get(client, "stats", start=T0, end=T0 + 4000)
    assert body["source"] == "raw" and body["approximate"] is False
    assert (body["count"], body["min"], body["max"], body["mean"], body["median"]) == (
        5, 1, 5, 3, 3)
    assert body["std"] == pytest.approx(math.sqrt(2))
    assert (body["first"], body["last"], body["change_pct"]) == (1, 5, 400)
    assert (body["first_time"], body["last_time"]) == (T0, T0 + 4000)
    assert body["spread"] == {"count": 5, "min": 1, "max": 1, "mean": 1, "last": 1}


def test_stats_of_an_empty_range_are_nulls(client: FlaskClient, rolled: None) -> None:
    body = get(client, "stats", start=T0 - 20 * MINUTE, end=T0 - 10 * MINUTE)
    assert body["count"] == 0 and body["mean"] is None and body["spread"]["count"] == 0


def test_stats_reaching_before_raw_history_use_rollups(client: FlaskClient,
                                                       rolled: None) -> None:
    body = get(client, "stats", start=T0, end=T0 + 12 * MINUTE)
    assert body["source"] == "rollup:60" and body["approximate"] is True
    assert body["count"] == 10 * 10 + 3
    assert (body["min"], body["max"]) == (95, 210)
    assert (body["first"], body["last"]) == (100, 210)
    assert body["change_pct"] == 110


def test_stats_of_a_long_range_use_rollups(client: FlaskClient, store: Store, rolled: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store.write([Tick("coinbase", "BTC-USD", T0 + MINUTE + i, price="1") for i in range(20)])
    monkeypatch.setattr(aggregate, "STATS_RAW_MAX", 10)
    body = get(client, "stats", start=T0, end=T0 + 12 * MINUTE)
    assert body["source"] == "rollup:60"


def test_stats_over_a_span_too_long_for_any_rollup_budget_still_avoid_raw(
        client: FlaskClient, rolled: None) -> None:
    # start=0 (what the chart page asks to find where history begins) spans decades: more
    # buckets than STATS_BUCKETS_MAX of every roll-up, yet raw ticks would be the whole history.
    body = get(client, "stats", start=0, end=T0 + 12 * MINUTE)
    assert body["source"] == "rollup:60" and body["first_time"] == T0


def test_stats_default_to_the_last_day(client: FlaskClient, rolled: None) -> None:
    body = get(client, "stats")
    assert body["end"] - body["start"] == 86_400_000


def test_ohlc_chains_coarse_then_fine_rollups_then_raw(client: FlaskClient, r: redis.Redis,
                                                       keys: Keys, store: Store) -> None:
    hour = 60 * MINUTE
    write_candles(r, keys, "coinbase", "BTC-USD", "price", 3600,
                  [Candle(T0, "10", "20", "5", "15", 3600)], T0 + hour)
    write_candles(r, keys, "coinbase", "BTC-USD", "price", 60,
                  [Candle(T0 + hour + i * MINUTE, "15", str(30 + i), "14", "16", 60)
                   for i in range(5)], T0 + hour + 5 * MINUTE)
    store.write([Tick("coinbase", "BTC-USD", T0 + hour + 2 * MINUTE, price="999"),  # rolled up
                 Tick("coinbase", "BTC-USD", T0 + hour + 6 * MINUTE, price="12")])
    body = get(client, "ohlc", interval="1h", start=T0, end=T0 + 2 * hour - 1)
    assert body["source"] == "rollup:3600,60"
    assert body["candles"] == [[T0, 10, 20, 5, 15, 0], [T0 + hour, 15, 34, 12, 12, 0]]
    assert body["ticks"] == [3600, 5 * 60 + 1]
