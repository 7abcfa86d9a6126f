"""Suite-wide: no API key in any test's output; one private redis-server and one
three-node Redis Cluster for every directory's tests (defined here, so that the context
and the tenancy tests share them instead of each starting their own).

Every key the tests make comes from `tenancy.new_key` and has its shape; after each test
(at teardown, when the output of all its phases is in), what it printed and logged (stdout,
stderr, log records) and its failure report are scanned for that shape. A test whose output
holds one errors, whatever else it asserted, and the key is blanked in what is reported.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator

import pytest
from context.conftest import (
    RedisClusterServers,
    RedisServer,
    running_redis,
    running_redis_cluster,
)

_KEY = re.compile(r"mr_[A-Za-z0-9_-]{43}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    texts = [content for _, content in report.sections]
    if report.longrepr is not None:
        texts.append(str(report.longrepr))
    if not any(_KEY.search(text) for text in texts):
        return report
    report.sections = [(name, _KEY.sub("mr_<key>", text)) for name, text in report.sections]
    if report.when == "teardown":
        report.outcome = "failed"
        report.longrepr = "an API key appears in this test's output"
    elif report.longrepr is not None:
        report.longrepr = _KEY.sub("mr_<key>", str(report.longrepr))
    return report


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One three-node Redis Cluster for the session; each test uses its own key prefix."""
    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; each test uses its own key prefix."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server
