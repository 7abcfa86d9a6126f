"""A private redis-server, or a three-node Redis Cluster, for the tests of one module, for
routers whose store is Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from context.conftest import running_redis, running_redis_cluster


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="module")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`redis+cluster://` to one node of a private three-node cluster."""
    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster.url
