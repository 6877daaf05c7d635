"""The API's rough edges made exact: relative times, which end `limit` keeps, the interval
grammar, the endpoint index, /series filters and CORS."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms, parse_instant
from tests.api_support import create, error_of, make_config

API = "/api/v1.0"
ORIGIN = "https://dash.example.com"


@pytest.mark.parametrize(("text", "expected"), [
    ("now", 10_000_000), ("now-15m", 10_000_000 - 900_000), ("-1h", 10_000_000 - 3_600_000),
    ("now+1h", 10_000_000 + 3_600_000), ("now-90", 10_000_000 - 90_000),
    ("1618677830", 1_618_677_830_000), ("-5", -5000),
])
def test_relative_and_absolute_instants(text: str, expected: int) -> None:
    assert parse_instant(text, now=10_000_000) == expected


@pytest.mark.parametrize("text", ["-1M", "now-1M", "now-", "-h", "now-1x", "nowish"])
def test_bad_relative_instants_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_instant(text, now=0)


def test_history_takes_relative_times(client: FlaskClient, store: Store) -> None:
    now = now_ms()
    store.write([Tick("coinbase", "BTC-USD", now - minutes * 60_000, price=str(minutes))
                 for minutes in (120, 30, 10, 1)])
    body = client.get(f"{API}/series/coinbase/BTC-USD/history?start=-1h&end=now").get_json()
    assert [value for _, value in body["points"]] == [30.0, 10.0, 1.0]
    body = client.get(f"{API}/series/coinbase/BTC-USD/history?start=now-15m").get_json()
    assert [value for _, value in body["points"]] == [10.0, 1.0]


def test_limit_with_start_takes_the_oldest_and_order_desc_the_newest(
        client: FlaskClient, store: Store) -> None:
    store.write([Tick("coinbase", "BTC-USD", 1_700_000_000_000 + i, price=str(i))
                 for i in range(10)])
    url = f"{API}/series/coinbase/BTC-USD/history"
    body = client.get(f"{url}?start=0&limit=3").get_json()
    assert [value for _, value in body["points"]] == [0.0, 1.0, 2.0]
    assert body["order"] == "asc" and body["truncated"] is True
    assert body["next_start"] == 1_700_000_000_003 and body["next_end"] is None
    body = client.get(f"{url}?start=0&limit=3&order=desc").get_json()
    assert [value for _, value in body["points"]] == [9.0, 8.0, 7.0]
    assert body["next_end"] == 1_700_000_000_006 and body["next_start"] is None
    body = client.get(f"{url}?start=0&limit=10").get_json()  # exactly all: not truncated
    assert body["truncated"] is False and body["next_start"] is None and body["count"] == 10


def test_interval_grammar_refuses_an_ambiguous_month(client: FlaskClient,
                                                      store: Store) -> None:
    store.write([Tick("coinbase", "BTC-USD", now_ms(), price="1")])
    url = f"{API}/series/coinbase/BTC-USD/ohlc"
    response = client.get(f"{url}?interval=1M")
    assert response.status_code == 400
    error = error_of(response)
    assert error["parameter"] == "interval" and "ambiguous" in error["message"]
    assert "30d" in error["message"]
    assert client.get(f"{url}?interval=1H").status_code == 400
    assert client.get(f"{url}?interval=1m").get_json()["interval"] == 60
    openapi = client.get(f"{API}/openapi.json").get_json()
    described = [param["description"] for param in
                 openapi["paths"]["/series/{exchange}/{symbol}/ohlc"]["get"]["parameters"]
                 if param["name"] == "interval"][0]
    assert "1M is refused" in described and "lower case" in described


def test_the_index_lists_every_endpoint_of_the_openapi_document(client: FlaskClient) -> None:
    response = client.get(f"{API}/")
    assert response.status_code == 200
    body = response.get_json()
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    assert [item["path"] for item in body["endpoints"]] == [API + path for path in paths]
    by_path = {item["path"]: item for item in body["endpoints"]}
    assert by_path[f"{API}/rules"]["methods"] == ["GET", "POST"]
    assert by_path[f"{API}/series"]["href"] == f"{API}/series"
    assert by_path[f"{API}/series/{{exchange}}/{{symbol}}/latest"]["href"] is None
    assert body["openapi"] == f"{API}/openapi.json" and body["metrics"] == "/metrics"


def test_series_filters(client: FlaskClient, store: Store) -> None:
    now = now_ms()
    store.write([Tick(exchange, symbol, now, price="1") for exchange, symbol in (
        ("coinbase", "BTC-USD"), ("coinbase", "ETH-EUR"), ("kraken", "BTC-USD"),
        ("kraken", "USDT-EUR"))])

    def listed(query: str) -> list[str]:
        response = client.get(f"{API}/series?{query}")
        assert response.status_code == 200, response.get_json()
        return [item["series"] for item in response.get_json()["series"]]

    assert listed("exchange=kraken") == ["kraken:BTC-USD", "kraken:USDT-EUR"]
    assert listed("quote=eur") == ["coinbase:ETH-EUR", "kraken:USDT-EUR"]
    assert listed("q=usd") == ["coinbase:BTC-USD", "kraken:BTC-USD", "kraken:USDT-EUR"]
    assert listed("exchange=coinbase&quote=USD") == ["coinbase:BTC-USD"]
    assert listed("q=doge") == []
    assert client.get(f"{API}/series?q=").status_code == 400
    assert client.get(f"{API}/series?symbol=BTC-USD").status_code == 400


def test_no_cors_header_without_configured_origins(client: FlaskClient) -> None:
    response = client.get(f"{API}/series", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_for_a_configured_origin_and_its_preflight(redis_url: str, r) -> None:
    client = create(make_config(redis_url, cors_origins=f"{ORIGIN} http://localhost:3000")
                    ).test_client()
    response = client.get(f"{API}/series", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    other = client.get(f"{API}/series", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options(f"{API}/rules", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in client.get(
        "/", headers={"Origin": ORIGIN}).headers  # the pages are not the API


def test_cors_any_origin(redis_url: str, r) -> None:
    client = create(make_config(redis_url, cors_origins="*")).test_client()
    response = client.get(f"{API}/health", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_a_bad_cors_origin_is_a_config_error(redis_url: str) -> None:
    from bcx import config as configmod

    with pytest.raises(configmod.ConfigError, match="cors_origins"):
        make_config(redis_url, cors_origins="dash.example.com/path")
