"""The series endpoints (list, latest, history) and the API's error shapes, against a real
redis-server holding the recorded Coinbase session."""

from __future__ import annotations

import pytest
import redis
from flask.testing import FlaskClient

from bcx.keys import Keys
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from tests.api_support import error_of, make_config

# Every test here runs on the standalone server and on the cluster (see conftest `r`).
pytestmark = pytest.mark.usefixtures("backend")


API = "/api/v1.0"
BASE_MS = 1_700_000_000_000


def last_of(ticks: list[Tick], symbol: str) -> Tick:
    return [tick for tick in ticks if tick.symbol == symbol][-1]


def test_series_lists_every_recorded_series_with_latest_values(client: FlaskClient,
                                                               recorded: list[Tick]) -> None:
    body = client.get(f"{API}/series").get_json()
    names = {item["series"] for item in body["series"]}
    assert names == {f"coinbase:{tick.symbol}" for tick in recorded}
    skl = next(item for item in body["series"] if item["series"] == "coinbase:SKL-USD")
    last = last_of(recorded, "SKL-USD")
    assert skl["price"] == float(last.price) and skl["time"] == last.ms
    assert skl["stale"] is True and skl["age_s"] > 0


def test_series_is_empty_when_nothing_is_tracked(client: FlaskClient) -> None:
    assert client.get(f"{API}/series").get_json() == {"series": []}


def test_latest_answers_values_as_numbers_with_spread_and_age(client: FlaskClient,
                                                              recorded: list[Tick]) -> None:
    last = last_of(recorded, "SKL-USD")
    body = client.get(f"{API}/series/coinbase/SKL-USD/latest").get_json()
    assert body["time"] == last.ms
    assert (body["price"], body["bid"], body["ask"]) == (float(last.price), float(last.bid),
                                                        float(last.ask))
    assert body["spread"] == pytest.approx(float(last.ask) - float(last.bid), abs=1e-12)
    assert body["age_s"] == pytest.approx((now_ms() - last.ms) / 1000, abs=5)


def test_latest_spread_is_exact_decimal_difference(client: FlaskClient, store: Store) -> None:
    store.write([Tick("kraken", "ETH-USD", now_ms(), "0.3", "0.1", "0.3")])
    body = client.get(f"{API}/series/kraken/ETH-USD/latest").get_json()
    assert body["spread"] == 0.2 and body["age_s"] < 5


def test_latest_without_a_price_gives_null_price(client: FlaskClient, store: Store) -> None:
    store.write([Tick("binance", "BTC-USDT", now_ms(), bid="100.5", ask="100.7")])
    body = client.get(f"{API}/series/binance/BTC-USDT/latest").get_json()
    assert body["price"] is None and body["bid"] == 100.5


def test_path_case_is_normalised(client: FlaskClient, recorded: list[Tick]) -> None:
    assert client.get(f"{API}/series/Coinbase/skl-usd/latest").status_code == 200


def test_unknown_series_is_404_on_every_series_endpoint(client: FlaskClient,
                                                        recorded: list[Tick]) -> None:
    for endpoint in ("latest", "history", "ohlc", "stats"):
        response = client.get(f"{API}/series/coinbase/BTC-EUR/{endpoint}")
        assert response.status_code == 404, endpoint
        assert "coinbase:BTC-EUR" in error_of(response)["message"]


def test_history_returns_the_range_oldest_first(client: FlaskClient,
                                                recorded: list[Tick]) -> None:
    skl = [tick for tick in recorded if tick.symbol == "SKL-USD"]
    start, end = skl[5].ms, skl[15].ms
    body = client.get(f"{API}/series/coinbase/SKL-USD/history",
                      query_string={"start": start, "end": end}).get_json()
    expected = sorted({(tick.ms, float(tick.price)) for tick in skl if start <= tick.ms <= end})
    assert [tuple(point) for point in body["points"]] == expected
    assert body["truncated"] is False and body["next_end"] is None
    assert body["count"] == len(expected)


def test_history_accepts_epoch_seconds_and_iso_times(client: FlaskClient,
                                                     recorded: list[Tick]) -> None:
    url = f"{API}/series/coinbase/SKL-USD/history"
    by_ms = client.get(url, query_string={"start": 1618677830000, "end": 1618677840000})
    by_s = client.get(url, query_string={"start": "1618677830", "end": "1618677840.0"})
    by_iso = client.get(url, query_string={"start": "2021-04-17T16:43:50Z",
                                           "end": "2021-04-17T18:44:00+02:00"})
    assert by_ms.get_json()["points"] == by_s.get_json()["points"] == by_iso.get_json()["points"]
    assert by_ms.get_json()["count"] > 0


def test_history_bid_field(client: FlaskClient, recorded: list[Tick]) -> None:
    body = client.get(f"{API}/series/coinbase/SKL-USD/history?field=bid").get_json()
    assert body["field"] == "bid"
    assert body["points"][-1] == [last_of(recorded, "SKL-USD").ms,
                                  float(last_of(recorded, "SKL-USD").bid)]


def test_history_never_exceeds_the_cap_and_says_it_truncated(r: redis.Redis, keys: Keys,
                                                            redis_url: str) -> None:
    from tests.api_support import create

    Store(r, keys).write([Tick("coinbase", "BTC-USD", BASE_MS + i, price=str(i))
                          for i in range(50)])
    capped = create(make_config(redis_url, history_cap="20")).test_client()
    body = capped.get(f"{API}/series/coinbase/BTC-USD/history").get_json()
    assert body["count"] == 20 and body["truncated"] is True
    assert [value for _, value in body["points"]] == [float(i) for i in range(20)]
    later = capped.get(f"{API}/series/coinbase/BTC-USD/history",
                       query_string={"start": body["next_start"]}).get_json()
    assert [value for _, value in later["points"]] == [float(i) for i in range(20, 40)]
    body = capped.get(f"{API}/series/coinbase/BTC-USD/history?order=desc").get_json()
    assert [value for _, value in body["points"]] == [float(i) for i in range(49, 29, -1)]
    older = capped.get(f"{API}/series/coinbase/BTC-USD/history",
                       query_string={"end": body["next_end"], "order": "desc"}).get_json()
    assert [value for _, value in older["points"]] == [float(i) for i in range(29, 9, -1)]
    assert capped.get(f"{API}/series/coinbase/BTC-USD/history?limit=21").status_code == 400


def test_history_limit_smaller_than_the_range(client: FlaskClient, store: Store) -> None:
    store.write([Tick("coinbase", "BTC-USD", BASE_MS + i, price=str(i)) for i in range(10)])
    body = client.get(f"{API}/series/coinbase/BTC-USD/history?limit=10").get_json()
    assert body["truncated"] is False and body["count"] == 10
    body = client.get(f"{API}/series/coinbase/BTC-USD/history?limit=9").get_json()
    assert body["truncated"] is True and body["count"] == 9


@pytest.mark.parametrize(("query", "parameter"), [
    ("limit=abc", "limit"),
    ("limit=0", "limit"),
    ("limit=99999999999999999999999", "limit"),
    ("field=volume", "field"),
    ("start=yesterday", "start"),
    ("end=nan", "end"),
    ("start=1e400", "start"),
    ("start=-5", "start"),
    ("start=2021-04-17T16:44:00Z&end=2021-04-17T16:43:00Z", "start"),
    ("colour=red", "colour"),
    ("limit=1&limit=2", "limit"),
    ("order=newest", "order"),
    ("start=-1M", "start"),
    ("start=now-", "start"),
    ("end=-5", "end"),
])
def test_bad_history_parameter_is_400_naming_it(client: FlaskClient, recorded: list[Tick],
                                                query: str, parameter: str) -> None:
    response = client.get(f"{API}/series/coinbase/SKL-USD/history?{query}")
    assert response.status_code == 400
    error = error_of(response)
    assert error["parameter"] == parameter and error["message"].startswith(parameter)


def test_wrong_method_is_405_with_allow_header(client: FlaskClient) -> None:
    response = client.delete(f"{API}/series")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert error_of(response)["status"] == 405


def test_unknown_path_is_json_404(client: FlaskClient) -> None:
    response = client.get(f"{API}/nothing/here")
    assert response.status_code == 404 and error_of(response)


def test_redis_down_is_503_not_500(redis_url: str) -> None:
    from tests.api_support import create

    dead = create(make_config("redis://127.0.0.1:1/0")).test_client()
    response = dead.get(f"{API}/series")
    assert response.status_code == 503
    assert "Redis" in error_of(response)["message"]
