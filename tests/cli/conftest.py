"""Fixtures: `modelrouter serve` as a child process on free ports, on its emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from modelrouter_testsupport import emulator_admin
from modelrouter_testsupport.router_process import RouterProcess, running_router


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    with running_router(tmp_path_factory.mktemp("router"), metrics=False) as process:
        yield process


@pytest.fixture
def emulator_url(router: RouterProcess) -> Iterator[str]:
    """The router's emulator, reset before and after the test."""
    url = router.emulator_url()
    emulator_admin.reset(url)
    yield url
    emulator_admin.reset(url)
