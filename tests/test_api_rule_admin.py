"""Managing alerts through the API: one rule, PATCH, silences, acknowledgements, the alert
filters, each rule's status, and the resolved event of a firing rule deleted or disabled."""

from __future__ import annotations

import configparser
import json

import pytest
import redis
from flask.testing import FlaskClient

from bcx import config as configmod
from bcx.keys import Keys
from bcx.timeutil import now_ms
from tests.api_support import TOKEN, create, error_of

API = "/api/v1.0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RULE = {"name": "btc-high", "kind": "above", "series": "coinbase:BTC-USD", "threshold": 70000}
SERIES = "coinbase:BTC-USD"
T0 = 1_700_000_000_000


def add(client: FlaskClient, **changes: object) -> str:
    response = client.post(f"{API}/rules", json={**RULE, **changes}, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def firing(r: redis.Redis, keys: Keys, rule_id: str, value: float = 70100.0) -> None:
    """The rule's saved state as the engine writes it while the rule fires."""
    r.hset(keys.rules_state, rule_id, json.dumps({"instances": {SERIES: {
        "state": "firing", "since": 1000, "fired": 2000, "armed": False, "entered": 2000,
        "value": value}}}))


def resolved_events(r: redis.Redis, keys: Keys) -> list[dict]:
    found = [json.loads(fields["event"]) for _, fields in r.xrange(keys.events_stream)]
    return [event for event in found if event["state"] == "resolved"]


def test_one_rule_with_its_status(client: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    rule_id = add(client, labels={"team": "desk"})
    body = client.get(f"{API}/rules/{rule_id}").get_json()
    assert (body["name"], body["labels"]) == ("btc-high", {"team": "desk"})
    assert body["status"]["state"] == "no_data"
    firing(r, keys, rule_id)
    status = client.get(f"{API}/rules").get_json()["rules"][0]["status"]
    assert status == {"state": "firing", "since": 2000, "value": 70100.0,
                      "silenced_until": None, "silence_comment": None}
    assert client.get(f"{API}/rules/nope").status_code == 404


def test_patch_changes_a_rule_in_place(client: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    rule_id = add(client)
    response = client.patch(f"{API}/rules/{rule_id}", headers=AUTH, json={
        "threshold": 71000.5, "for": "1m", "cooldown": 30, "window": "1h", "name": "btc-top",
        "labels": {"route": "ops"}, "enabled": False})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["id"], body["threshold"], body["for"], body["cooldown"], body["name"],
            body["labels"], body["enabled"]) == (rule_id, 71000.5, 60.0, 30.0, "btc-top",
                                                 {"route": "ops"}, False)
    assert json.loads(r.hget(keys.rules, rule_id))["name"] == "btc-top"
    assert client.get(f"{API}/rules/{rule_id}").get_json()["threshold"] == 71000.5


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "below"}, "kind"), ({"series": "coinbase:ETH-USD"}, "series"),
    ({"threshold": "high"}, "threshold"), ({"enabled": "no"}, "enabled"),
    ({"name": "bad name"}, "name"), ({"labels": {"a b": "x"}}, "labels"),
    ({"labels": ["x"]}, "labels"), ({"for": "-1s"}, "for"), ({}, "body"), ([1], "body"),
    ({"threshold": None}, "threshold")])
def test_patch_refuses_bad_input_naming_the_field(client: FlaskClient, body: object,
                                                  field: str) -> None:
    rule_id = add(client)
    response = client.patch(f"{API}/rules/{rule_id}", json=body, headers=AUTH)
    assert response.status_code == 400 and error_of(response)["parameter"] == field


def test_patch_refusals(redis_url: str, r: redis.Redis) -> None:
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    parser.read_dict({"redis": {"url": redis_url}, "web": {"api_token": TOKEN},
                      "rule:eth-low": {"kind": "below", "series": "kraken:ETH-USD",
                                       "threshold": "1000"}})
    client = create(configmod.from_parser(parser, "t", env={})).test_client()
    first, second = add(client), add(client, name="other")
    change = {"threshold": 1}
    assert client.patch(f"{API}/rules/conf:eth-low", json=change,
                        headers=AUTH).status_code == 409
    assert client.patch(f"{API}/rules/conf:nope", json=change, headers=AUTH).status_code == 404
    assert client.patch(f"{API}/rules/nope", json=change, headers=AUTH).status_code == 404
    taken = client.patch(f"{API}/rules/{second}", json={"name": "btc-high"}, headers=AUTH)
    assert taken.status_code == 409 and first in error_of(taken)["message"]
    assert client.patch(f"{API}/rules/{first}", json={"name": "eth-low"},
                        headers=AUTH).status_code == 409
    assert client.patch(f"{API}/rules/{first}", json=change).status_code == 401
    assert client.get(f"{API}/rules/conf:eth-low").get_json()["source"] == "config"


def test_silence_and_lift(client: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    rule_id = add(client)
    before = now_ms()
    response = client.post(f"{API}/rules/{rule_id}/silence", headers=AUTH,
                           json={"for": "1h", "comment": "maintenance"})
    assert response.status_code == 200
    assert before + 3_600_000 <= response.get_json()["until"] <= now_ms() + 3_600_000
    status = client.get(f"{API}/rules/{rule_id}").get_json()["status"]
    assert (status["state"], status["silence_comment"]) == ("silenced", "maintenance")
    assert client.delete(f"{API}/rules/{rule_id}/silence", headers=AUTH).status_code == 204
    assert client.get(f"{API}/rules/{rule_id}").get_json()["status"]["state"] == "no_data"
    assert client.delete(f"{API}/rules/{rule_id}/silence", headers=AUTH).status_code == 404
    assert client.post(f"{API}/rules/nope/silence", json={"for": 60},
                       headers=AUTH).status_code == 404
    assert client.post(f"{API}/rules/{rule_id}/silence", json={"for": 60}).status_code == 401


@pytest.mark.parametrize(("body", "field"), [
    ({}, "for"), ({"for": 0}, "for"), ({"for": "0s"}, "for"), ({"for": "soon"}, "for"),
    ({"for": True}, "for"), ({"for": 60, "comment": 5}, "comment"),
    ({"for": 60, "until": 5}, "until"), ("1h", "body")])
def test_bad_silences_are_400_naming_the_field(client: FlaskClient, body: object,
                                                field: str) -> None:
    rule_id = add(client)
    response = client.post(f"{API}/rules/{rule_id}/silence", json=body, headers=AUTH)
    assert response.status_code == 400 and error_of(response)["parameter"] == field


def record(r: redis.Redis, keys: Keys, event_id: str, rule_id: str, state: str,
           time: int = 1, series: str = SERIES, name: str = "btc-high") -> None:
    r.lpush(keys.alerts, json.dumps({"id": event_id, "rule": rule_id, "name": name,
                                     "series": series, "state": state, "kind": "above",
                                     "time": time}))


def test_acknowledge_a_firing_alert(client: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    rule_id = add(client)
    record(r, keys, "e1", rule_id, "firing")
    record(r, keys, "e2", rule_id, "resolved")
    assert client.post(f"{API}/alerts/e1/ack", headers=AUTH).status_code == 409  # not firing
    firing(r, keys, rule_id)
    assert client.post(f"{API}/alerts/e2/ack", headers=AUTH).status_code == 409
    assert client.post(f"{API}/alerts/nope/ack", headers=AUTH).status_code == 404
    assert client.post(f"{API}/alerts/e1/ack").status_code == 401
    response = client.post(f"{API}/alerts/e1/ack", headers=AUTH)
    assert response.status_code == 200
    assert response.get_json()["rule"] == rule_id
    assert r.hexists(keys.rules_acks, f"{rule_id} {SERIES}")


def test_alerts_filter_by_series_rule_state_and_since(client: FlaskClient, r: redis.Redis,
                                                      keys: Keys) -> None:
    record(r, keys, "a", "r1", "firing", time=T0 + 1000)
    record(r, keys, "b", "r1", "resolved", time=T0 + 2000)
    record(r, keys, "c", "r2", "firing", time=T0 + 3000, series="kraken:ETH-USD", name="eth")

    def ids(query: str) -> list[str]:
        response = client.get(f"{API}/alerts?{query}")
        assert response.status_code == 200, response.get_json()
        return [alert["id"] for alert in response.get_json()["alerts"]]

    assert ids("series=coinbase:BTC-USD") == ["b", "a"]
    assert ids("rule=r2") == ids("rule=eth") == ["c"]
    assert ids("state=firing") == ["c", "a"]
    assert ids(f"since={T0 + 2000}") == ["c", "b"]
    assert ids("state=firing&series=coinbase:BTC-USD&limit=1") == ["a"]
    for bad in ("state=open", "since=soon", "rule=", "series=" + "x" * 65):
        response = client.get(f"{API}/alerts?{bad}")
        assert response.status_code == 400 and error_of(response)["parameter"] == \
            bad.partition("=")[0]


def test_deleting_or_disabling_a_firing_rule_resolves_it(client: FlaskClient, r: redis.Redis,
                                                        keys: Keys) -> None:
    deleted, disabled = add(client, labels={"team": "desk"}), add(client, name="other")
    firing(r, keys, deleted)
    firing(r, keys, disabled)
    assert client.delete(f"{API}/rules/{deleted}", headers=AUTH).status_code == 204
    assert client.patch(f"{API}/rules/{disabled}", json={"enabled": False},
                        headers=AUTH).status_code == 200
    assert client.patch(f"{API}/rules/{disabled}", json={"enabled": False},
                        headers=AUTH).status_code == 200  # already disabled: no second one
    assert [(e["rule"], e["name"], e["labels"], e["series"]) for e in resolved_events(r, keys)] \
        == [(deleted, "btc-high", {"team": "desk"}, SERIES), (disabled, "other", {}, SERIES)]
