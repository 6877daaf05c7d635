"""`bcx migrate`: keys of older versions move to their current names, once, losing nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis

from bcx.keys import Keys
from bcx.store.migrations import migrate
from tests.cluster_support import RedisClusterDeployment


def _old_install(client: redis.Redis) -> None:
    client.hset("bcx:rules", mapping={"r1": '{"name": "a"}', "r2": '{"name": "b"}'})
    client.hset("bcx:rules:state", "r1", '{"state": "firing"}')
    client.rpush("bcx:alerts", "new-1", "old-2")
    client.rpush("bcx:deadletter", "letter")
    client.xadd("bcx:events:stream", {"event": "{}"}, id="1-1")
    client.xgroup_create("bcx:events:stream", "bcx-server", id="0")


def test_every_renamed_key_moves_with_its_contents_and_group(r: redis.Redis,
                                                               keys: Keys) -> None:
    _old_install(r)
    steps = migrate(r, keys)
    assert [step.action for step in steps] == ["moved"] * 5
    assert r.hgetall(keys.rules) == {"r1": '{"name": "a"}', "r2": '{"name": "b"}'}
    assert r.lrange(keys.alerts, 0, -1) == ["new-1", "old-2"]
    assert r.xinfo_groups(keys.events_stream)[0]["name"] == "bcx-server"
    assert not r.exists("bcx:rules", "bcx:rules:state", "bcx:alerts", "bcx:deadletter",
                        "bcx:events:stream")


def test_a_second_run_changes_nothing(r: redis.Redis, keys: Keys) -> None:
    _old_install(r)
    migrate(r, keys)
    before = {key: r.dump(key) for key in r.keys("*")}
    assert {step.action for step in migrate(r, keys)} == {"nothing"}
    assert {key: r.dump(key) for key in r.keys("*")} == before


def test_an_interrupted_move_is_finished(r: redis.Redis, keys: Keys) -> None:
    r.hset("bcx:rules", "r1", "{}")
    r.restore(keys.rules, 0, r.dump("bcx:rules"))  # copied, then the process died
    assert migrate(r, keys)[3].action == "finished"
    assert not r.exists("bcx:rules") and r.hgetall(keys.rules) == {"r1": "{}"}


def test_writes_of_the_new_version_are_merged_not_overwritten(r: redis.Redis,
                                                                keys: Keys) -> None:
    _old_install(r)
    r.hset(keys.rules, mapping={"r2": '{"name": "b2"}', "r3": '{"name": "c"}'})
    r.lpush(keys.alerts, "newest")
    r.xadd(keys.events_stream, {"event": "{}"})
    actions = {step.old: step.action for step in migrate(r, keys)}
    assert actions["bcx:rules"] == "merged"
    assert r.hgetall(keys.rules) == {"r1": '{"name": "a"}', "r2": '{"name": "b2"}',
                                     "r3": '{"name": "c"}'}
    assert r.lrange(keys.alerts, 0, -1) == ["newest", "new-1", "old-2"]
    assert actions["bcx:events:stream"].startswith("kept: both exist (stream, 1 entries")
    assert r.exists("bcx:events:stream")


def test_migrate_moves_keys_across_cluster_slots(cluster_url: str,
                                                  redis_cluster: RedisClusterDeployment) -> None:
    client = redis_cluster.client()
    try:
        _old_install(client)
        assert {step.action for step in migrate(client, Keys("bcx"))} == {"moved"}
        assert client.hget(Keys("bcx").rules_state, "r1") == '{"state": "firing"}'
    finally:
        client.close()


def test_the_command_reports_and_exits_by_outcome(r: redis.Redis, redis_url: str,
                                                  tmp_path: Path) -> None:
    conf = tmp_path / "bcx.conf"
    conf.write_text(f"[redis]\nurl = {redis_url}\n")
    command = [sys.executable, "-m", "bcx.cli", "migrate", "--config", str(conf)]
    _old_install(r)
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "bcx:rules -> bcx:{rules}: moved" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stdout.strip()) == (0, "nothing to migrate")
    r.xadd("bcx:events:stream", {"event": "{}"})
    r.xadd(Keys("bcx").events_stream, {"event": "{}"})
    kept = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert kept.returncode == 1 and "kept: both exist" in kept.stdout
