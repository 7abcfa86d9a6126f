"""Which providers go through an environment-configured proxy: those keep the SDK's own
HTTP client, which honours the proxy variables; the others take the aiohttp transport."""

from __future__ import annotations

import pytest
from modelrouter_server.providers.connection import proxied

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_no_proxy_variable_means_no_proxy() -> None:
    assert not proxied("https://api.example.com/v1")
    assert not proxied(None)


def test_no_proxy_alone_names_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    assert not proxied("https://api.example.com/v1")
    assert not proxied(None)


def test_a_proxy_for_the_scheme_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert proxied("https://api.example.com/v1")
    assert proxied("HTTPS://API.EXAMPLE.COM/v1")
    assert proxied(None)  # the SDK's default endpoint is https
    assert not proxied("http://127.0.0.1:8000/v1")  # no proxy named for http


def test_a_host_in_no_proxy_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "vllm.internal,localhost")
    assert not proxied("https://vllm.internal/v1")
    assert proxied("https://api.example.com/v1")


def test_all_proxy_applies_to_every_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://proxy.internal:1080")
    assert proxied("http://127.0.0.1:8000/v1")
    assert proxied("https://api.example.com/v1")
