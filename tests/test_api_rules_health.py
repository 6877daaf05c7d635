"""Rules (token enforcement included), alerts, health and the OpenAPI document."""

from __future__ import annotations

import json

import pytest
import redis
from flask.testing import FlaskClient

from bcx.health import EXPECTED
from bcx.heartbeat import Heartbeat
from bcx.keys import Keys
from bcx.store import Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from tests.api_support import TOKEN, create, error_of, make_config

API = "/api/v1.0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RULE = {"name": "btc-high", "kind": "above", "series": "coinbase:BTC-USD", "threshold": 70000}


def test_posted_rule_is_stored_and_listed(client: FlaskClient, r: redis.Redis,
                                          keys: Keys) -> None:
    response = client.post(f"{API}/rules", json=RULE, headers=AUTH)
    assert response.status_code == 201
    rule = response.get_json()
    assert (rule["name"], rule["source"], rule["threshold"]) == ("btc-high", "api", 70000)
    assert r.hexists(keys.rules, rule["id"])
    listed = client.get(f"{API}/rules").get_json()["rules"]
    assert [item["id"] for item in listed] == [rule["id"]]


def test_rules_from_the_config_file_are_listed(redis_url: str, r: redis.Redis) -> None:
    import configparser

    from bcx import config as configmod

    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    parser.read_dict({"redis": {"url": redis_url},
                      "rule:eth-low": {"kind": "below", "series": "kraken:ETH-USD",
                                       "threshold": "1000"}})
    listed = create(configmod.from_parser(parser, "t", env={})).test_client().get(
        f"{API}/rules").get_json()["rules"]
    assert [(item["id"], item["source"]) for item in listed] == [("conf:eth-low", "config")]


def test_deleted_rule_is_gone(client: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    rule_id = client.post(f"{API}/rules", json=RULE, headers=AUTH).get_json()["id"]
    assert client.delete(f"{API}/rules/{rule_id}", headers=AUTH).status_code == 204
    assert not r.hexists(keys.rules, rule_id)
    assert client.delete(f"{API}/rules/{rule_id}", headers=AUTH).status_code == 404


def test_config_rule_cannot_be_deleted_through_the_api(client: FlaskClient) -> None:
    response = client.delete(f"{API}/rules/conf:anything", headers=AUTH)
    assert response.status_code == 409 and "bcx.conf" in error_of(response)["message"]


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer ünïcode"},
])
def test_rule_writes_without_the_right_token_are_401(client: FlaskClient, r: redis.Redis,
                                                     keys: Keys, headers: dict) -> None:
    response = client.post(f"{API}/rules", json=RULE, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response)
    assert client.delete(f"{API}/rules/abc", headers=headers).status_code == 401
    assert r.hlen(keys.rules) == 0


def test_rule_writes_are_403_when_no_token_is_configured(redis_url: str,
                                                        r: redis.Redis) -> None:
    closed = create(make_config(redis_url, api_token="")).test_client()
    response = closed.post(f"{API}/rules", json=RULE, headers={"Authorization": "Bearer "})
    assert response.status_code == 403
    assert "api_token" in error_of(response)["message"]
    assert closed.delete(f"{API}/rules/abc").status_code == 403


@pytest.mark.parametrize(("body", "parameter"), [
    ({**RULE, "kind": "sideways"}, "kind"),
    ({**RULE, "threshold": "lots"}, "threshold"),
    ({**RULE, "series": "BTC"}, "series"),
    ({**RULE, "name": "no spaces allowed"}, "name"),
    ({**RULE, "colour": "red"}, "colour"),
    ({"name": "x", "kind": "above", "series": "coinbase:BTC-USD"}, "threshold"),
    ([1, 2], "body"),
])
def test_invalid_rule_is_400_naming_the_field(client: FlaskClient, body: object,
                                              parameter: str) -> None:
    response = client.post(f"{API}/rules", json=body, headers=AUTH)
    assert response.status_code == 400
    assert error_of(response)["parameter"] == parameter


@pytest.mark.parametrize(("change", "parameter"), [
    ({"enabled": 1}, "enabled"),
    ({"enabled": "no"}, "enabled"),
    ({"kind": "ABOVE"}, "kind"),
    ({"series": "coinbase:btc-usd"}, "series"),
    ({"series": " coinbase:BTC-USD"}, "series"),
    ({"name": "btc-high\n"}, "name"),
    ({"threshold": True}, "threshold"),
    ({"threshold": 1e16}, "threshold"),
    ({"window": "500ms"}, "window"),
    ({"window": 0.5}, "window"),
    ({"cooldown": " 5m"}, "cooldown"),
    ({"for": "٣s"}, "for"),
])
def test_rule_documents_are_held_to_the_documented_schema(client: FlaskClient, change: dict,
                                                          parameter: str) -> None:
    response = client.post(f"{API}/rules", json={**RULE, **change}, headers=AUTH)
    assert response.status_code == 400
    assert error_of(response)["parameter"] == parameter


@pytest.mark.parametrize("document", [
    {**RULE, "kind": "change_pct", "threshold": -2.5, "window": "15m"},
    {**RULE, "enabled": False, "for": 30, "cooldown": "1.5m", "window": 60},
    {"name": "feed", "kind": "feed_down", "series": "", "threshold": None},
    {"name": "quiet", "kind": "stale", "series": "coinbase:ETH-USD", "threshold": 0.5},
])
def test_rule_documents_the_schema_allows_are_accepted(client: FlaskClient,
                                                       document: dict) -> None:
    assert client.post(f"{API}/rules", json=document, headers=AUTH).status_code == 201


def test_a_listed_rule_can_be_posted_back(client: FlaskClient) -> None:
    posted = client.post(f"{API}/rules", json={**RULE, "window": "1h"}, headers=AUTH)
    client.delete(f"{API}/rules/{posted.get_json()['id']}", headers=AUTH)  # its name is free
    again = client.post(f"{API}/rules", json=posted.get_json(), headers=AUTH)
    assert again.status_code == 201
    assert {**again.get_json(), "id": None} == {**posted.get_json(), "id": None}


def test_rule_body_that_is_not_json_is_400(client: FlaskClient) -> None:
    response = client.post(f"{API}/rules", data="{nope", headers=AUTH,
                           content_type="application/json")
    assert response.status_code == 400 and error_of(response)["parameter"] == "body"


def test_deeply_nested_rule_body_is_400_not_500(client: FlaskClient) -> None:
    response = client.post(f"{API}/rules", data="[" * 50_000, headers=AUTH,
                           content_type="application/json")
    assert response.status_code == 400 and error_of(response)["parameter"] == "body"


def test_oversized_rule_body_is_413(client: FlaskClient) -> None:
    response = client.post(f"{API}/rules", data="x" * 100_000, headers=AUTH,
                           content_type="application/json")
    assert response.status_code == 413 and error_of(response)


def test_alerts_are_newest_first_and_limited(client: FlaskClient, r: redis.Redis,
                                             keys: Keys) -> None:
    for index in range(5):
        r.lpush(keys.alerts, json.dumps({"id": str(index), "rule": "r", "series": "s",
                                         "state": "firing", "kind": "above", "time": index}))
    r.lpush(keys.alerts, "not json")
    assert [a["id"] for a in client.get(f"{API}/alerts").get_json()["alerts"]] == [
        "4", "3", "2", "1", "0"]
    assert len(client.get(f"{API}/alerts?limit=2").get_json()["alerts"]) == 1
    assert client.get(f"{API}/alerts?limit=1001").status_code == 400


def test_health_is_200_when_components_are_up_and_series_fresh(client: FlaskClient,
                                                               r: redis.Redis, keys: Keys) -> None:
    for name in EXPECTED:
        Heartbeat(r, keys, name, ttl=30).beat()
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms(), price="1")])
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["healthy"] is True and body["reasons"] == []
    assert body["components"]["tracker"]["state"] == "up"
    assert body["series"][0]["stale"] is False


def test_health_is_503_when_a_component_is_down(client: FlaskClient, r: redis.Redis,
                                                keys: Keys) -> None:
    beat = Heartbeat(r, keys, "watcher", ttl=30)
    beat.beat()
    beat.clear()
    response = client.get(f"{API}/health")
    assert response.status_code == 503
    assert response.get_json()["components"]["watcher"]["up"] is False
    assert "watcher: no heartbeat" in response.get_json()["reasons"]


def test_health_is_503_when_a_series_is_stale(client: FlaskClient, r: redis.Redis,
                                              keys: Keys) -> None:
    Store(r, keys).write([Tick("coinbase", "BTC-USD", now_ms() - 120_000, price="1")])
    response = client.get(f"{API}/health")
    assert response.status_code == 503 and response.get_json()["series"][0]["stale"] is True
    assert response.get_json()["series"][0]["reason"] == "last tick 120 s ago, stale after 60 s"


def test_openapi_documents_every_api_route(app, client: FlaskClient) -> None:
    document = client.get(f"{API}/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.removeprefix(API).replace("<", "{").replace(">", "}")
            routed |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented
