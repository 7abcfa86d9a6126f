"""HTTP/1.1 to providers by default; HTTP/2 when a provider asks for it: negotiated over
TLS (ALPN), prior knowledge (h2c) on plaintext. The stand-in is hypercorn, a real HTTP/2
server, behind a certificate of a throw-away CA; the calls go through the real SDKs."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework
from modelrouter_server.config import RouterConfig
from modelrouter_server.domain import Message, Role
from modelrouter_server.providers import build_providers

from .support import CLAUDE, GPT_4O_MINI, request

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_OPENAI_ANSWER = {
    "id": "chatcmpl-h2",
    "object": "chat.completion",
    "created": 0,
    "model": GPT_4O_MINI,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "over the wire"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
}
_ANTHROPIC_ANSWER = {
    "id": "msg_h2",
    "type": "message",
    "role": "assistant",
    "model": CLAUDE,
    "content": [{"type": "text", "text": "over the wire"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 3},
}


@dataclass
class StandIn:
    """A provider stand-in that notes the HTTP version of every request it answers."""

    base_url: str
    versions: list[str] = field(default_factory=list)


class _Recorder:
    def __init__(self) -> None:
        self.wait_s: list[float] = []

    def observe_pool_wait(self, provider: str, seconds: float) -> None:
        self.wait_s.append(seconds)

    def observe_pool_timeout(self, provider: str) -> None:
        raise AssertionError(f"{provider}: no pool timeout expected")


def _app(versions: list[str]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        while (await receive()).get("more_body"):
            pass
        versions.append(scope["http_version"])
        answer = _ANTHROPIC_ANSWER if scope["path"].endswith("/messages") else _OPENAI_ANSWER
        body = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _stand_in(tmp_path: Path, *, tls: bool) -> AsyncIterator[StandIn]:
    # Bound and listening before hypercorn takes it, so the first call cannot race its start.
    # Hypercorn takes the descriptor over and closes it when it stops.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    settings = HypercornConfig()
    settings.bind = [f"fd://{listener.detach()}"]
    settings.accesslog = settings.errorlog = None
    scheme = "http"
    if tls:
        authority = trustme.CA()
        authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        leaf = authority.issue_cert("127.0.0.1")
        leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        settings.certfile, settings.keyfile = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
        scheme = "https"
    stop = asyncio.Event()
    stand_in = StandIn(f"{scheme}://127.0.0.1:{port}")
    app = cast(ASGIFramework, _app(stand_in.versions))  # plain dicts, not its TypedDicts
    server = asyncio.create_task(serve(app, settings, shutdown_trigger=stop.wait))
    try:
        yield stand_in
    finally:
        stop.set()
        await server


@pytest.fixture
async def tls_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StandIn]:
    # The SDKs' HTTP client trusts the CA named by SSL_CERT_FILE, as it would a private CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    async for stand_in in _stand_in(tmp_path, tls=True):
        yield stand_in


@pytest.fixture
async def plain_stand_in(tmp_path: Path) -> AsyncIterator[StandIn]:
    async for stand_in in _stand_in(tmp_path, tls=False):
        yield stand_in


def _config(base_url: str, http2: bool | None) -> RouterConfig:
    extra = {} if http2 is None else {"http2": http2}
    window = {"context_window": 128_000, "max_output_tokens": 16_384}
    return RouterConfig.model_validate(
        {
            "providers": {
                "anthropic": {
                    "kind": "anthropic",
                    "api_key_env": "ANTHROPIC_API_KEY",
                    "base_url": base_url,
                    **extra,
                },
                "openai": {
                    "kind": "openai",
                    "api_key_env": "OPENAI_API_KEY",
                    "base_url": base_url + "/v1",
                    **extra,
                },
            },
            "models": {
                CLAUDE: {"provider": "anthropic", **window},
                GPT_4O_MINI: {"provider": "openai", **window},
            },
            "routing": {"default": [GPT_4O_MINI]},
            "emulator": {"mode": "off"},
        }
    )


async def _ask_both(config: RouterConfig) -> _Recorder:
    recorder = _Recorder()
    env = {"ANTHROPIC_API_KEY": "sk-ant-test", "OPENAI_API_KEY": "sk-test"}
    providers = build_providers(config, env=env, emulator_base_url=None, pool_observer=recorder)
    try:
        for name, model in (("anthropic", CLAUDE), ("openai", GPT_4O_MINI)):
            completion = await providers[name].complete(request(model, Message(Role.USER, "Hi.")))
            assert completion.text == "over the wire"
    finally:
        for provider in providers.values():
            await provider.aclose()
    return recorder


async def test_https_providers_speak_http1_unless_http2_is_asked_for(
    tls_stand_in: StandIn,
) -> None:
    recorder = await _ask_both(_config(tls_stand_in.base_url, http2=None))
    assert tls_stand_in.versions == ["1.1", "1.1"]
    assert recorder.wait_s == [0.0, 0.0]  # each call's wait for a connection, timed once
    await _ask_both(_config(tls_stand_in.base_url, http2=False))
    assert tls_stand_in.versions[2:] == ["1.1", "1.1"]


async def test_http2_true_negotiates_http2_with_an_https_provider(tls_stand_in: StandIn) -> None:
    recorder = await _ask_both(_config(tls_stand_in.base_url, http2=True))
    assert tls_stand_in.versions == ["2", "2"]
    assert len(recorder.wait_s) == 2  # the HTTP/2 client times its waits too


async def test_plaintext_stays_http1_unless_http2_is_asked_for(plain_stand_in: StandIn) -> None:
    await _ask_both(_config(plain_stand_in.base_url, http2=None))
    assert plain_stand_in.versions == ["1.1", "1.1"]
    await _ask_both(_config(plain_stand_in.base_url, http2=True))
    assert plain_stand_in.versions[2:] == ["2", "2"]
