"""Fixtures: `modelrouter serve` as a child process, for the docs' examples."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modelrouter_testsupport.router_process import RouterProcess, running_router


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    with running_router(tmp_path_factory.mktemp("router"), metrics=False) as process:
        yield process
