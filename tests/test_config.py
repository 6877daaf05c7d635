"""bcx.conf: lookup, types, validation messages and environment overrides."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bcx import config
from bcx.cli import main
from bcx.sample import sample_config

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bcx.conf"
    path.write_text(text)
    return str(path)


def test_sample_config_is_valid_and_typed():
    cfg = config.load(str(ROOT / "bcx.conf"), env={})
    assert cfg.redis.url == "redis://127.0.0.1:6379/0"
    assert cfg.tracker.exchanges == ("coinbase",)
    assert cfg.exchanges["coinbase"].symbols == ("BTC-USD", "ETH-USD")
    assert cfg.watcher.raw_retention == 2 * 86400
    assert cfg.watcher.rollups == ((60, 90 * 86400), (3600, 5 * 365 * 86400))
    assert cfg.rules["btc-wide-spread"].for_ == 10
    assert cfg.rules["btc-wide-spread"].cooldown == 300


def test_committed_sample_matches_the_schema():
    assert (ROOT / "bcx.conf").read_text() == sample_config()


def test_sample_documents_every_key():
    text = (ROOT / "bcx.conf").read_text()
    for section, keys in config.schema_keys().items():
        for key in keys:
            assert re.search(rf"^#?\s*{re.escape(key)} =", text, re.M), (section, key)


@pytest.mark.parametrize(("text", "section", "key"), [
    ("[tracker]\nbatch_size = lots\n", "tracker", "batch_size"),
    ("[watcher]\nraw_retention = 7 days\n", "watcher", "raw_retention"),
    ("[redis]\nurl = http://localhost\n", "redis", "url"),
    ("[exchange:kraken]\nurl = https://ws.kraken.com\n", "exchange:kraken", "url"),
    ("[exchange:coinbase]\nsymbols = btcusd\n", "exchange:coinbase", "symbols"),
    ("[rule:x]\nkind = above\nseries = coinbase:BTC-USD\nthreshold = high\n", "rule:x",
     "threshold"),
    ("[rule:x]\nkind = sideways\n", "rule:x", "kind"),
    ("[rule:x]\nkind = above\nseries = coinbase:BTC-USD\n", "rule:x", "threshold"),
    ("[web]\nbind = 8000\n", "web", "bind"),
    ("[tracker]\nbatchsize = 10\n", "tracker", "batchsize"),
    ("[server]\nnotifiers = log webhook\n", "server", "webhook_url"),
    ("[server]\nnotifiers = command\n", "server", "command"),
])
def test_bad_value_names_file_section_key_and_expectation(tmp_path, text, section, key):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, env={})
    message = str(caught.value)
    assert path in message
    assert f"[{section}] {key}" in message
    assert "expected" in message


def test_unknown_section_is_refused(tmp_path):
    with pytest.raises(config.ConfigError, match=r"\[exchange:ftx\]"):
        config.load(write(tmp_path, "[exchange:ftx]\nurl = wss://x\n"), env={})


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, "[redis]\nurl = redis://10.0.0.1:6379/0\n[tracker]\nbatch_size = 5\n")
    cfg = config.load(path, env={"BCX_REDIS_URL": "redis://127.0.0.1:7000/2",
                                 "BCX_TRACKER_BATCH_SIZE": "9",
                                 "BCX_EXCHANGE_COINBASE_URL": "ws://127.0.0.1:9001"})
    assert cfg.redis.url == "redis://127.0.0.1:7000/2"
    assert cfg.tracker.batch_size == 9
    assert cfg.exchanges["coinbase"].url == "ws://127.0.0.1:9001"


def test_bad_environment_value_names_the_variable(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, env={"BCX_WEB_HISTORY_CAP": "0"})
    assert "environment BCX_WEB_HISTORY_CAP: [web] history_cap = '0'" in str(caught.value)


def test_unknown_bcx_variable_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, env={"BCX_TRACKER_TYPO": "1", "BCX_TRACKER_BATCH_SIZE": "9",
                               "BCX_EXCHANGE_FTX_URL": "wss://x", "OTHER_TYPO": "1"})
    message = str(caught.value)
    assert "environment BCX_TRACKER_TYPO: no such setting" in message
    assert "environment BCX_EXCHANGE_FTX_URL: no such setting" in message
    assert "OTHER_TYPO" not in message


def test_misspelt_variable_gets_a_suggestion(tmp_path):
    with pytest.raises(config.ConfigError, match=r"did you mean BCX_TRACKER_BATCH_SIZE\?"):
        config.load(write(tmp_path, ""), env={"BCX_TRACKER_BATCHSIZE": "9"})


def test_rule_variables_must_name_a_rule_of_the_file(tmp_path):
    path = write(tmp_path, "[rule:btc_high]\nkind = above\nseries = coinbase:BTC-USD\n"
                 "threshold = 1\n")
    cfg = config.load(path, env={"BCX_RULE_BTC_HIGH_THRESHOLD": "2"})
    assert cfg.rules["btc_high"].threshold == 2
    with pytest.raises(config.ConfigError, match="environment BCX_RULE_BTC_LOW_THRESHOLD"):
        config.load(path, env={"BCX_RULE_BTC_LOW_THRESHOLD": "2"})


def test_non_config_bcx_variables_stay_allowed(tmp_path):
    # Every BCX_* name the project reads elsewhere (init scripts, make, install.sh, the
    # command notifier's environment) passes the check. web/ uses BCX_* only as Flask
    # app.config keys.
    names = {"BCX_CONF": str(write(tmp_path, "")), "BCX_EVENT_ID": "1-0",
             "BCX_EVENT_MESSAGE": "x"}
    names.update({name: "x" for name in config.NON_CONFIG_ENV if name != "BCX_CONF"})
    assert config.load(None, env=names).redis.prefix == "bcx"
    sources = subprocess.run(["git", "grep", "-ohE", r"\bBCX_[A-Z0-9_]*[A-Z0-9]\b", "--",
                              ":!tests", ":!web", ":!README.md",
                              ":!bcx/config.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    known = {config.env_name(kind, key) for kind, keys in config.schema_keys().items()
             if kind not in config.TEMPLATED for key in keys}
    flask_keys = {"BCX_CONFIG", "BCX_CONFIG_PATH", "BCX_KEYS"}  # app.config, not environment
    stray = {name for name in sources if name not in known | config.NON_CONFIG_ENV | flask_keys
             and not name.startswith(("BCX_EVENT_", "BCX_EXCHANGE_"))}
    assert not stray


def test_lookup_order(tmp_path, monkeypatch):
    explicit = write(tmp_path, "[redis]\nprefix = explicit\n")
    env_file = tmp_path / "env.conf"
    env_file.write_text("[redis]\nprefix = fromenv\n")
    assert config.load(explicit, env={"BCX_CONF": str(env_file)}).redis.prefix == "explicit"
    assert config.load(None, env={"BCX_CONF": str(env_file)}).redis.prefix == "fromenv"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "SEARCH_PATH", ("/nonexistent/bcx.conf", "./bcx.conf"))
    assert config.load(None, env={}).redis.prefix == "explicit"
    (tmp_path / "bcx.conf").unlink()
    with pytest.raises(config.ConfigError, match="no config file"):
        config.load(None, env={})


def test_durations_read_naturally():
    parse = config.TrackerConfig.__dataclass_fields__["silence_timeout"].metadata["parse"]
    assert [parse(text) for text in ("250ms", "30s", "15m", "2h", "7d", "45")] == [
        0.25, 30, 900, 7200, 604800, 45]


def test_config_check_exits_0_and_masks_secrets(tmp_path):
    path = write(tmp_path, "[redis]\nurl = redis://:hunter2@127.0.0.1:6379/1\n"
                           "[web]\napi_token = t0ken\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", path])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "t0ken" not in result.output
    assert "url = redis://:***@127.0.0.1:6379/1" in result.output
    assert "api_token = ***" in result.output


def test_config_check_exits_2_naming_section_and_key(tmp_path):
    path = write(tmp_path, "[tracker]\nflush_interval = soon\n")
    result = CliRunner().invoke(main, ["config", "check", "--config", path])
    assert result.exit_code == 2
    assert "[tracker] flush_interval = 'soon'" in result.output
    assert "expected a duration" in result.output


def test_config_check_on_the_shipped_sample():
    result = CliRunner().invoke(main, ["config", "check", "--config", str(ROOT / "bcx.conf")])
    assert result.exit_code == 0, result.output
