"""Rules the API must refuse (past ``[web] rules_max``, a taken name, a series that could never
fire) and rules it accepts reaching a running watcher; against a real redis-server."""

from __future__ import annotations

import configparser
import json
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient

from bcx import config as configmod
from bcx import rulebook
from bcx.config import RedisConfig
from bcx.keys import Keys
from bcx.redisconn import connect, from_config
from bcx.store import RuleStore, Store
from bcx.ticks import Tick
from bcx.timeutil import now_ms
from bcx.watcher.rules import RuleEngine
from bcx.watcher.run import RULES, Watcher
from tests.api_support import TOKEN, create, error_of
from tests.cluster_support import RedisClusterDeployment
from tests.support import wait_for

API = "/api/v1.0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 3


def rule(name: str, series: str = "coinbase:BTC-USD") -> dict:
    return {"name": name, "kind": "above", "series": series, "threshold": 70000}


def small_config(redis_url: str, **sections: dict[str, str]) -> configmod.Config:
    """Coinbase tracked with BTC-USD and ETH-USD (the defaults), the API capped at 3 rules."""
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    parser.read_dict({"redis": {"url": redis_url},
                      "web": {"api_token": TOKEN, "rules_max": str(LIMIT)},
                      "watcher": {"rule_interval": "1h"}, **sections})
    return configmod.from_parser(parser, "test", env={})


@pytest.fixture
def capped(redis_url: str, r: redis.Redis) -> FlaskClient:
    return create(small_config(redis_url)).test_client()


def post(client: FlaskClient, document: dict):  # noqa: ANN201 - a test response
    return client.post(f"{API}/rules", json=document, headers=AUTH)


def test_the_api_takes_rules_max_rules_and_refuses_the_next(capped: FlaskClient,
                                                            r: redis.Redis, keys: Keys) -> None:
    for index in range(LIMIT):
        assert post(capped, rule(f"r{index}")).status_code == 201
    refused = post(capped, rule("one-too-many"))
    assert refused.status_code == 409
    assert "rules_max" in error_of(refused)["message"] and f"({LIMIT})" in error_of(
        refused)["message"]
    assert r.hlen(keys.rules) == LIMIT


def test_a_deleted_rule_frees_its_place(capped: FlaskClient) -> None:
    ids = [post(capped, rule(f"r{index}")).get_json()["id"] for index in range(LIMIT)]
    assert capped.delete(f"{API}/rules/{ids[0]}", headers=AUTH).status_code == 204
    assert post(capped, rule("replacement")).status_code == 201


def test_rules_of_the_config_file_do_not_count_toward_the_cap(redis_url: str,
                                                              r: redis.Redis) -> None:
    client = create(small_config(redis_url, **{
        "rule:operator": {"kind": "below", "series": "coinbase:BTC-USD", "threshold": "1"}}
    )).test_client()
    for index in range(LIMIT):
        assert post(client, rule(f"r{index}")).status_code == 201


def test_two_adds_racing_for_the_last_place_do_not_both_pass(
        redis_url: str, r: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    config = small_config(redis_url)
    for index in range(LIMIT - 1):
        rulebook.save_rule(RuleStore(r, keys), Store(r, keys), config, rule(f"r{index}"))
    other = connect(redis_url)
    read_names = rulebook._name_of
    raced: list[rulebook.Rule] = []
    racing = False

    def name_of_then_race(text: str) -> object:
        # The other add lands after this one read the hash and before it writes.
        nonlocal racing
        if not racing:
            racing = True
            raced.append(rulebook.save_rule(RuleStore(other, keys), Store(other, keys), config,
                                            rule("the-other")))
        return read_names(text)

    monkeypatch.setattr(rulebook, "_name_of", name_of_then_race)
    with pytest.raises(rulebook.RuleConflict, match="rules_max"):
        rulebook.save_rule(RuleStore(r, keys), Store(r, keys), config, rule("this-one"))
    other.close()
    assert r.hlen(keys.rules) == LIMIT and r.hexists(keys.rules, raced[0].id)


def test_a_duplicate_name_is_409_naming_the_existing_rule(capped: FlaskClient) -> None:
    first = post(capped, rule("btc-high")).get_json()
    again = post(capped, rule("btc-high", "coinbase:ETH-USD"))
    assert again.status_code == 409 and first["id"] in error_of(again)["message"]


def test_the_name_of_a_config_rule_is_taken_too(redis_url: str, r: redis.Redis) -> None:
    client = create(small_config(redis_url, **{
        "rule:btc-low": {"kind": "below", "series": "coinbase:BTC-USD", "threshold": "1"}}
    )).test_client()
    response = post(client, rule("btc-low"))
    assert response.status_code == 409 and "conf:btc-low" in error_of(response)["message"]


@pytest.mark.parametrize("series", ["coinbase:DOGE-USD", "kraken:BTC-USD"])
def test_a_series_neither_configured_nor_known_is_422_naming_it(capped: FlaskClient,
                                                                 r: redis.Redis, keys: Keys,
                                                                 series: str) -> None:
    response = post(capped, rule("never", series))
    assert response.status_code == 422
    error = error_of(response)
    assert error["parameter"] == "series" and series in error["message"]
    assert r.hlen(keys.rules) == 0


def test_a_configured_series_not_yet_seen_is_accepted(capped: FlaskClient, r: redis.Redis,
                                                      keys: Keys) -> None:
    assert not r.sismember(keys.series, "coinbase:ETH-USD")
    assert post(capped, rule("eth", "coinbase:ETH-USD")).status_code == 201


def test_a_known_series_of_an_untracked_exchange_is_accepted(capped: FlaskClient,
                                                             store: Store) -> None:
    store.write([Tick("kraken", "BTC-USD", now_ms(), price="1")])
    assert post(capped, rule("kraken", "kraken:BTC-USD")).status_code == 201


@pytest.mark.parametrize(("series", "status"), [
    ("", 201), ("coinbase:DOGE-USD", 201), ("kraken:BTC-USD", 422)])
def test_feed_down_rules_watch_an_exchange_not_a_series(capped: FlaskClient, series: str,
                                                        status: int) -> None:
    document = {"name": "feed", "kind": "feed_down", "series": series}
    assert post(capped, document).status_code == status


def test_a_change_notice_adds_and_drops_just_the_rule_it_names(redis_url: str, r: redis.Redis,
                                                               keys: Keys) -> None:
    config = small_config(redis_url)
    engine = RuleEngine(r, keys, config, started_ms=now_ms())
    engine.start()
    saved = rulebook.save_rule(RuleStore(r, keys), Store(r, keys), config, rule("api"))
    engine.changed(saved.id)
    assert [item.id for item in engine.by_series["coinbase:BTC-USD"]] == [saved.id]
    rulebook.delete_rule(RuleStore(r, keys), saved.id)
    engine.changed(saved.id)
    assert engine.rules == [] and engine.by_series == {}


@pytest.fixture
def running_watcher(redis_url: str, r: redis.Redis) -> Iterator[Watcher]:
    connection = connect(redis_url)
    watcher = Watcher(connection, small_config(redis_url))
    watcher.start()
    wait_for(lambda: r.hget(f"bcx:heartbeat:{RULES}", "time"), message="the rules thread")
    yield watcher
    watcher.shutdown()
    connection.close()


def test_a_rule_posted_while_the_watcher_runs_fires_on_the_next_ticks(
        running_watcher: Watcher, capped: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    created = post(capped, {**rule("new"), "threshold": 100}).get_json()
    store = Store(r, keys, publish_ticks=True)

    def fired() -> list[dict]:
        # rule_interval is 1 h: only a published tick can make the watcher evaluate the rule.
        store.write([Tick("coinbase", "BTC-USD", now_ms(), price="101")])
        found = [json.loads(fields["event"]) for _, fields in r.xrange(keys.events_stream)]
        return [event for event in found if event["rule"] == created["id"]]

    [event] = wait_for(fired, message="the new rule's event")
    assert (event["state"], event["value"]) == ("firing", 101.0)


def test_a_rule_deleted_while_the_watcher_runs_stops_firing(
        running_watcher: Watcher, capped: FlaskClient, r: redis.Redis, keys: Keys) -> None:
    """The delete's change notice reaches the running rules thread: the rule is gone from
    its evaluation (a second rule on the same ticks shows when they were evaluated)."""
    doomed = post(capped, {**rule("doomed"), "threshold": 100, "cooldown": 0}).get_json()["id"]
    witness = post(capped, {**rule("witness"), "threshold": 100, "cooldown": 0}).get_json()["id"]
    store = Store(r, keys, publish_ticks=True)

    def events_of(rule_id: str) -> list[str]:
        return [event["state"] for event in
                (json.loads(fields["event"]) for _, fields in r.xrange(keys.events_stream))
                if event["rule"] == rule_id]

    def tick(price: str) -> None:
        store.write([Tick("coinbase", "BTC-USD", now_ms(), price=price)])

    tick("101")
    wait_for(lambda: events_of(doomed) == events_of(witness) == ["firing"],
             message="both rules firing")
    assert capped.delete(f"{API}/rules/{doomed}", headers=AUTH).status_code == 204
    assert events_of(doomed) == ["firing", "resolved"]  # the resolved the delete publishes
    # Down and up again: the witness resolves and fires anew; the deleted rule stays silent.
    tick("99")
    wait_for(lambda: events_of(witness) == ["firing", "resolved"], message="witness resolved")
    tick("101")
    wait_for(lambda: events_of(witness) == ["firing", "resolved", "firing"],
             message="the witness firing again")
    assert events_of(doomed) == ["firing", "resolved"]


def test_rules_are_added_and_deleted_on_a_redis_cluster_and_watchers_are_told(
        cluster_url: str, redis_cluster: RedisClusterDeployment) -> None:
    # A cluster client refuses PUBLISH inside a transaction: the change notice goes after it.
    keys = Keys("bcx")
    client = from_config(RedisConfig(url=cluster_url, mode="cluster"))
    store = RuleStore(client, keys)
    listener = redis.Redis(port=redis_cluster.master_of(keys.rules).port, decode_responses=True)
    notices = listener.pubsub(ignore_subscribe_messages=True)
    notices.subscribe(keys.rules_changed_channel)
    wait_for(lambda: listener.pubsub_numsub(keys.rules_changed_channel)[0][1] == 1)

    def next_notice() -> str | None:
        message = wait_for(lambda: notices.get_message(timeout=0.1), message="a change notice")
        return message["data"]

    try:
        saved = rulebook.save_rule(store, Store(client, keys), small_config(cluster_url),
                                   rule("on-a-cluster"))
        assert next_notice() == saved.id
        store.save_states({saved.id: "{}"})
        assert rulebook.delete_rule(store, saved.id)
        assert next_notice() == saved.id
        assert store.documents() == {} and store.states() == {}
    finally:
        notices.close()
        listener.close()
        client.close()
