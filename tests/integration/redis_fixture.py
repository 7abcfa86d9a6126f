"""A private redis-server for the tests of one module, for routers whose store is Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from context.conftest import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI installs it")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()
