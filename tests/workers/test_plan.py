"""`[server] workers` parsed strictly, the worker count, and each worker's share of the
per-server limits."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from modelrouter_server.config import ConfigError, RouterConfig, default_config_path
from modelrouter_server.workers import WorkerSpec, cores, per_worker, worker_count
from pydantic import ValidationError


def _config(server: dict[str, Any] | None = None, **sections: dict[str, Any]) -> RouterConfig:
    raw = tomllib.loads(default_config_path().read_text())
    raw["server"].update(server or {})
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return RouterConfig.model_validate(raw)


@pytest.mark.parametrize("bad", ["2", True, 2.0, -1, 257])
def test_workers_is_a_whole_number_from_0_to_256(bad: object) -> None:
    with pytest.raises(ValidationError) as error:
        _config({"workers": bad})
    assert error.value.errors()[0]["loc"] == ("server", "workers")


def test_0_means_one_per_core_and_the_option_overrides_the_config() -> None:
    assert worker_count(_config({"workers": 0}), None) == cores()
    assert worker_count(_config({"workers": 3}), None) == 3
    assert worker_count(_config({"workers": 3}), 1) == 1
    assert worker_count(_config({"workers": 1}), 0) == cores()


def test_several_workers_cannot_keep_conversations_in_memory() -> None:
    memory = {"store": "memory"}
    with pytest.raises(
        ConfigError,
        match=re.escape('server.workers: 2 workers cannot share context.store = "memory"'),
    ):
        worker_count(_config({"workers": 2}, context=memory), None)
    with pytest.raises(ConfigError, match="--workers: 4 workers"):
        worker_count(_config(context=memory), 4)
    assert worker_count(_config({"workers": 0}, context=memory), None) == 1


def test_each_worker_gets_its_share_of_the_per_server_limits() -> None:
    config = _config(
        admission={"max_concurrent_rpcs": 1000, "max_concurrent_streams": 501},
        tenants={"team": {"max_concurrent_rpcs": 3, "requests_per_minute": 60}},
    )
    assert per_worker(config, 1) is config
    shared = per_worker(config, 2)
    assert shared.admission.max_concurrent_rpcs == 500
    assert shared.admission.max_concurrent_streams == 250
    assert shared.admission.max_client_connections == config.admission.max_client_connections // 2
    assert shared.tenants["team"].max_concurrent_rpcs == 1
    assert shared.tenants["team"].requests_per_minute == 60  # in the ledger: shared already
    assert per_worker(config, 8).tenants["team"].max_concurrent_rpcs == 1  # never 0


def test_a_worker_spec_survives_the_command_line() -> None:
    spec = WorkerSpec(index=1, count=4, line_fd=9, emulator_url="http://127.0.0.1:1234")
    assert WorkerSpec.from_arg(spec.to_arg()) == spec
