"""An SDK endpoint sends what the SDK client itself would send for the same call, and
raises what the client would raise: the request built once is no copy of stale state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic._constants import RAW_RESPONSE_HEADER as ANTHROPIC_RAW
from anthropic._models import FinalRequestOptions as AnthropicOptions
from modelrouter_server.providers import Connection
from modelrouter_server.providers.sdk_endpoint import SdkEndpoint
from openai._constants import RAW_RESPONSE_HEADER as OPENAI_RAW
from openai._models import FinalRequestOptions as OpenAIOptions

from .support import API_KEY

BODY = {"model": "m", "messages": [{"role": "user", "content": "Grüße, 世界"}], "n": 1.5}


@dataclass
class _Recorded:
    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class _Server:
    """Records each request; answers with `status` and `answer`."""

    status: int = 200
    answer: bytes = b'{"ok": true}'
    extra_headers: bytes = b""
    silent: bool = False
    """Takes requests and never answers."""
    requests: list[_Recorded] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed its connection
                return
            line, *lines = head[:-4].split(b"\r\n")
            headers = [tuple(h.split(b": ", 1)) for h in lines]
            length = next(int(v) for k, v in headers if k.lower() == b"content-length")
            body = await reader.readexactly(length)
            self.requests.append(_Recorded(line, [(k.lower(), v) for k, v in headers], body))
            if self.silent:
                continue
            writer.write(
                b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                % (self.status, len(self.answer))
                + self.extra_headers
                + b"\r\n"
                + self.answer
            )
            await writer.drain()


@asynccontextmanager
async def _serving(server: _Server) -> AsyncIterator[int]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()


@dataclass(frozen=True)
class _Sdk:
    module: ModuleType
    client: Callable[..., Any]
    http: Callable[..., httpx2.AsyncClient]
    path: str
    options: Any
    raw: str
    extra: dict[str, object]
    base: str


SDKS = [
    _Sdk(
        openai,
        openai.AsyncOpenAI,
        openai.DefaultAsyncHttpxClient,
        "/chat/completions",
        OpenAIOptions,
        OPENAI_RAW,
        {"security": {"bearer_auth": True}},
        "/v1",
    ),
    _Sdk(
        anthropic,
        anthropic.AsyncAnthropic,
        anthropic.DefaultAsyncHttpxClient,
        "/v1/messages",
        AnthropicOptions,
        ANTHROPIC_RAW,
        {},
        "",
    ),
]


@asynccontextmanager
async def _endpoint(sdk: _Sdk, port: int) -> AsyncIterator[tuple[SdkEndpoint, Any]]:
    connection = Connection(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}{sdk.base}")
    client, http = connection.sdk_client(sdk.client, sdk.http, connection.pool_watch("p"))
    endpoint = SdkEndpoint(
        client,
        sdk.path,
        http=http,
        request_options=sdk.options,
        errors=sdk.module,
        raw_response_header=sdk.raw,
        options=sdk.extra,
    )
    try:
        yield endpoint, client
    finally:
        await client.close()


TIMEOUTS = httpx2.Timeout(30.0, connect=5.0)


async def _sdk_post(client: Any, sdk: _Sdk, body: dict[str, object]) -> httpx2.Response:
    """The same call through the SDK client's own request loop."""
    response: httpx2.Response = await client.post(
        sdk.path,
        cast_to=httpx2.Response,
        body=body,
        options={**sdk.extra, "timeout": TIMEOUTS},
    )
    return response


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
async def test_a_call_sends_what_the_sdk_client_sends(sdk: _Sdk) -> None:
    server = _Server()
    async with _serving(server) as port, _endpoint(sdk, port) as (endpoint, client):
        await endpoint.call(BODY, timeouts=TIMEOUTS)
        await _sdk_post(client, sdk, BODY)
    ours, theirs = server.requests
    assert ours.line == theirs.line
    assert sorted(ours.headers) == sorted(theirs.headers)
    assert (b"x-stainless-read-timeout", b"30.0") in ours.headers
    assert ours.body == theirs.body
    assert json.loads(ours.body) == BODY


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
async def test_a_stream_asks_for_one(sdk: _Sdk) -> None:
    server = _Server()
    async with _serving(server) as port, _endpoint(sdk, port) as (endpoint, _):
        response = await endpoint.open_stream(BODY, timeouts=TIMEOUTS)
        assert not response.is_closed  # the caller reads the body
        assert await response.aread() == server.answer
    (sent,) = server.requests
    assert json.loads(sent.body) == {**BODY, "stream": True}


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
async def test_an_open_stream_no_longer_holds_the_body_it_sent(sdk: _Sdk) -> None:
    # The response keeps its request while the answer streams: a long prompt must not be
    # held that long. What was sent is whole; sending it again fails instead of sending
    # nothing.
    server = _Server()
    async with _serving(server) as port, _endpoint(sdk, port) as (endpoint, _):
        response = await endpoint.open_stream(BODY, timeouts=TIMEOUTS)
        with pytest.raises(httpx2.StreamConsumed):
            [part async for part in response.request.stream]  # type: ignore[union-attr]
        await response.aclose()
    (sent,) = server.requests
    assert json.loads(sent.body) == {**BODY, "stream": True}
    assert (b"content-length", str(len(sent.body)).encode()) in sent.headers


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
@pytest.mark.parametrize("opening", ["call", "open_stream"])
async def test_an_error_status_raises_what_the_sdk_client_raises(sdk: _Sdk, opening: str) -> None:
    server = _Server(status=429, answer=b'{"error": {"message": "slow down", "type": "rate"}}')
    async with _serving(server) as port, _endpoint(sdk, port) as (endpoint, client):
        send: Callable[..., Awaitable[httpx2.Response]] = getattr(endpoint, opening)
        with pytest.raises(sdk.module.RateLimitError) as ours:
            await send(BODY, timeouts=TIMEOUTS)
        with pytest.raises(sdk.module.RateLimitError) as theirs:
            await _sdk_post(client, sdk, BODY)
    assert str(ours.value) == str(theirs.value)
    assert "slow down" in str(ours.value)
    assert ours.value.status_code == theirs.value.status_code == 429
    assert ours.value.body == theirs.value.body


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
async def test_a_refused_connection_raises_the_sdk_connection_error(sdk: _Sdk) -> None:
    server = _Server()
    async with _serving(server) as port:
        pass  # closed again: nothing listens on the port now
    async with _endpoint(sdk, port) as (endpoint, _):
        with pytest.raises(sdk.module.APIConnectionError) as caught:
            await endpoint.call(BODY, timeouts=TIMEOUTS)
    assert isinstance(caught.value.__cause__, httpx2.ConnectError)


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
async def test_a_stream_sends_what_the_sdk_client_sends(sdk: _Sdk) -> None:
    server = _Server()
    async with _serving(server) as port, _endpoint(sdk, port) as (endpoint, client):
        response = await endpoint.open_stream(BODY, timeouts=TIMEOUTS)
        await response.aclose()
        await _sdk_post(client, sdk, {**BODY, "stream": True})
    ours, theirs = server.requests
    assert sorted(ours.headers) == sorted(theirs.headers)
    assert ours.body == theirs.body


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
async def test_a_cookie_the_upstream_set_goes_back_as_the_sdk_client_sends_it(sdk: _Sdk) -> None:
    # A balancer's affinity cookie, say.
    server = _Server(extra_headers=b"Set-Cookie: aff=node7; Path=/\r\n")
    async with _serving(server) as port, _endpoint(sdk, port) as (endpoint, client):
        await endpoint.call(BODY, timeouts=TIMEOUTS)
        await endpoint.call(BODY, timeouts=TIMEOUTS)
        await _sdk_post(client, sdk, BODY)
    first, ours, theirs = server.requests
    assert (b"cookie", b"aff=node7") not in first.headers
    assert (b"cookie", b"aff=node7") in ours.headers
    assert sorted(ours.headers) == sorted(theirs.headers)


@pytest.mark.parametrize("sdk", SDKS, ids=["openai", "anthropic"])
async def test_a_read_timeout_raises_the_sdk_timeout_error(sdk: _Sdk) -> None:
    server = _Server(silent=True)
    async with _serving(server) as port, _endpoint(sdk, port) as (endpoint, _):
        with pytest.raises(sdk.module.APITimeoutError) as caught:
            await endpoint.call(BODY, timeouts=httpx2.Timeout(0.2, connect=5.0))
    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)
