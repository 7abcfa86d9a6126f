"""Redis URLs: one server or a Redis Cluster, told apart by the scheme and parsed strictly
at start-up, with errors that name the setting and never echo a password."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelrouter_server.config import ConfigError, default_config_path, load_config
from modelrouter_server.observability import configured_secrets
from modelrouter_server.redis_connection import RedisTarget, parse_redis_url


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis://127.0.0.1:6379/0", RedisTarget("redis://127.0.0.1:6379/0", cluster=False)),
        ("rediss://u:p@h:1/2", RedisTarget("rediss://u:p@h:1/2", cluster=False)),
        ("unix:///run/redis.sock?db=1", RedisTarget("unix:///run/redis.sock?db=1", cluster=False)),
        ("redis+cluster://h:7000", RedisTarget("redis://h:7000", cluster=True)),
        ("redis+cluster://h", RedisTarget("redis://h", cluster=True)),
        ("rediss+cluster://u:p@h:7000/0", RedisTarget("rediss://u:p@h:7000/0", cluster=True)),
        ("REDIS+CLUSTER://h:7000/", RedisTarget("redis://h:7000/", cluster=True)),
    ],
)
def test_urls_name_one_server_or_a_cluster(url: str, target: RedisTarget) -> None:
    assert parse_redis_url(url) == target


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:6379", "the scheme must be"),
        ("127.0.0.1:6379", "the scheme must be"),
        ("redis://", "no host"),
        ("redis://h:notaport/0", "not a valid URL"),
        ("unix+cluster:///tmp/s", "a cluster URL starts with"),
        ("redis+cluster:///0", "names one node"),
        ("redis+cluster://h:7000/1", "only database 0"),
        ("redis+cluster://h:7000?db=2", "only database 0"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)


@pytest.mark.parametrize("section", ["context", "ledger"])
def test_a_bad_url_stops_start_up_naming_the_setting(tmp_path: Path, section: str) -> None:
    bad = 'redis_url = "redis+cluster://u:hunter2@h/5"'
    text = default_config_path().read_text()
    if section == "context":
        text = text.replace("[context]\n", f"[context]\n{bad}\n")
    else:
        text += f"\n[ledger]\n{bad}\n"
    path = tmp_path / "router.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert f"{section}.redis_url: Value error, a Redis Cluster has only database 0" in str(
        refused.value
    )
    assert "hunter2" not in str(refused.value)


def test_a_cluster_url_is_accepted_for_both_settings(tmp_path: Path) -> None:
    text = default_config_path().read_text().replace('store = "sqlite"', 'store = "redis"')
    text = text.replace("[context]\n", '[context]\nredis_url = "redis+cluster://10.0.0.5:7000"\n')
    text += '\n[ledger]\nredis_url = "rediss+cluster://10.0.0.6:7000"\n'
    path = tmp_path / "router.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.context.redis_url == "redis+cluster://10.0.0.5:7000"
    assert config.ledger.redis_url == "rediss+cluster://10.0.0.6:7000"


def test_passwords_in_both_urls_are_scrubbed_from_logs(tmp_path: Path) -> None:
    text = default_config_path().read_text()
    text = text.replace("[context]\n", '[context]\nredis_url = "redis+cluster://u:pw-store@h"\n')
    text += '\n[ledger]\nredis_url = "rediss+cluster://u:pw-ledger@h:7000"\n'
    path = tmp_path / "router.toml"
    path.write_text(text)
    secrets = configured_secrets(load_config(path), {})
    assert {"pw-store", "pw-ledger"} <= set(secrets)
