"""The auth, tenant, TLS and ledger sections: parsed strictly, errors naming the path, the
exposure check, and `modelrouter keys create` producing lines the config accepts."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from modelrouter_server.config import (
    AuthMode,
    ConfigError,
    RouterConfig,
    check_exposure,
    default_config_path,
    load_config,
)
from modelrouter_server.domain import Task
from modelrouter_server.tenancy import KeyRing, key_digest
from modelrouter_testsupport.router_process import modelrouter_command

DIGEST = "ab" * 32


def _write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "router.toml"
    path.write_text(default_config_path().read_text() + "\n" + extra)
    return path


def _config(**sections: dict[str, Any]) -> RouterConfig:
    raw = tomllib.loads(default_config_path().read_text())
    raw.update(sections)
    return RouterConfig.model_validate(raw)


def test_tenants_parse_with_one_key_or_several(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            f"""
[auth]
mode = "api_key"
default_tenant = "legacy"
[tenants.alice]
api_key_sha256 = "{DIGEST}"
allowed_models = ["gpt-4o-mini"]
allowed_tasks = ["chat", "summarize"]
requests_per_minute = 5
tokens_per_minute = 10000
max_concurrent_streams = 2
budget_usd_per_day = 1.5
budget_usd_per_month = 20
[tenants.bob]
api_key_sha256 = ["{"cd" * 32}", "{"ef" * 32}"]
[server.tls]
cert_file = "server.pem"
key_file = "server.key"
""",
        )
    )
    assert config.auth.mode is AuthMode.API_KEY
    assert config.auth.default_tenant == "legacy"
    alice = config.tenants["alice"]
    assert alice.api_key_sha256 == (DIGEST,)
    assert alice.allowed_tasks == (Task.CHAT, Task.SUMMARIZE)
    assert alice.budget_usd_per_month == 20.0
    assert config.tenants["bob"].api_key_sha256 == ("cd" * 32, "ef" * 32)
    assert config.server.tls is not None and config.server.tls.client_ca_file == ""
    assert config.server.metrics_host == "127.0.0.1" and config.server.reflection is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[tenants.alice]\napi_key_sha256 = "nothex"', "tenants.alice.api_key_sha256"),
        (f'[tenants.alice]\napi_key_sha256 = "{DIGEST}"\nrpm = 5', "tenants.alice.rpm"),
        (
            f'[tenants.alice]\napi_key_sha256 = "{DIGEST}"\nrequests_per_minute = 0',
            "tenants.alice.requests_per_minute",
        ),
        (
            f'[tenants.alice]\napi_key_sha256 = "{DIGEST}"\nallowed_models = ["gpt-5"]',
            "tenants.alice.allowed_models[0]: no model 'gpt-5'",
        ),
        (
            f'[tenants.alice]\napi_key_sha256 = "{DIGEST}"\n'
            f'[tenants.bob]\napi_key_sha256 = "{DIGEST}"',
            "tenants.bob.api_key_sha256[0]: already a key of 'alice'",
        ),
        ('[auth]\nmode = "api_key"', 'auth.mode: "api_key" needs a tenant'),
        ('[auth]\nmode = "oauth"', "auth.mode"),
        ('[server.tls]\ncert_file = "a.pem"', "server.tls.key_file"),
        ('[tenants."bad name"]\n', "tenants.bad name: not a tenant name"),
    ],
)
def test_bad_sections_name_their_path(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, extra))
    assert message in str(error.value)


def test_no_auth_on_a_network_address_refuses_to_start() -> None:
    config = _config()
    assert check_exposure(config, "127.0.0.1") is None
    assert check_exposure(config, "::1") is None
    assert check_exposure(config, "localhost") is None
    with pytest.raises(ConfigError) as refused:
        check_exposure(config, "0.0.0.0")
    assert "\n" not in str(refused.value)
    assert 'auth.mode = "none"' in str(refused.value)
    opted_out = _config(auth={"allow_unauthenticated": True})
    warning = check_exposure(opted_out, "0.0.0.0")
    assert warning is not None and "unauthenticated" in warning
    keyed = _config(auth={"mode": "api_key"}, tenants={"a": {"api_key_sha256": DIGEST}})
    assert check_exposure(keyed, "0.0.0.0") is None


def test_keys_create_prints_a_key_once_and_lines_the_config_accepts(tmp_path: Path) -> None:
    result = subprocess.run(
        [*modelrouter_command(), "keys", "create", "--tenant", "alice"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = re.search(r"^\s+(mr_\S+)$", result.stdout, re.MULTILINE)
    assert key is not None
    start = result.stdout.index("[tenants.alice]")
    lines = result.stdout[start:].split("\n\n")[0]
    config = load_config(_write(tmp_path, f'[auth]\nmode = "api_key"\n{lines}'))
    assert config.tenants["alice"].api_key_sha256 == (key_digest(key.group(1)),)
    assert KeyRing(config.tenants).tenant_for(key.group(1)) == "alice"
    assert KeyRing(config.tenants).tenant_for(key.group(1) + "x") is None
    # Two runs, two different keys.
    again = subprocess.run(
        [*modelrouter_command(), "keys", "create", "--tenant", "alice"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert key.group(1) not in again.stdout


def test_keys_create_refuses_a_bad_tenant_name() -> None:
    result = subprocess.run(
        [*modelrouter_command(), "keys", "create", "--tenant", "a b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "--tenant" in result.stderr and not result.stdout
