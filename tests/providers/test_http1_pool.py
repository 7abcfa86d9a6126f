"""A provider's HTTP/1.1 pool (aiohttp): connections come back when responses close,
every call's wait for one is reported (a wait that ran out as a pool timeout only), a
failing connection is named for the phase it failed in, and a body is read in bounded
pieces."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncGenerator

import httpx2
import pytest
from modelrouter_server.domain import Message, Role, StreamEvent
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.errors import ProviderTimeout, RouterError
from modelrouter_server.providers import Connection, OpenAIProvider
from modelrouter_server.providers.aiohttp_transport import READ_BUFFER_BYTES, AiohttpTransport
from modelrouter_server.providers.anthropic_provider import AnthropicProvider
from modelrouter_server.providers.pool import PoolWatch

from .support import CLAUDE, GPT_4O_MINI, request


class _Recorder:
    def __init__(self) -> None:
        self.wait_s: list[float] = []
        self.timeouts = 0

    def observe_pool_wait(self, provider: str, seconds: float) -> None:
        self.wait_s.append(seconds)

    def observe_pool_timeout(self, provider: str) -> None:
        self.timeouts += 1


def _provider(emulator: Emulator, recorder: _Recorder, *, connections: int) -> AnthropicProvider:
    connection = Connection(
        api_key="emulator",
        base_url=emulator.base_url,
        max_connections=connections,
        pool_timeout_s=0.3,
        pool_observer=recorder,
    )
    return AnthropicProvider("anthropic", connection, emulated=True)


async def _hold(provider: AnthropicProvider, count: int) -> list[AsyncGenerator[StreamEvent]]:
    """`count` streams, each stalled after its first event: each holds a connection."""
    held = []
    for _ in range(count):
        stream = provider.stream(request(CLAUDE, Message(Role.USER, "Hi.")))
        assert isinstance(stream, AsyncGenerator)
        held.append(stream)
        await anext(stream)
    return held


async def test_closed_streams_give_their_connections_back(emulator: Emulator) -> None:
    emulator.set_behavior(CLAUDE, Behavior(stall_after_tokens=1, stall_s=30.0))
    recorder = _Recorder()
    provider = _provider(emulator, recorder, connections=3)
    try:
        for _ in range(2):  # the second round needs the first round's connections back
            held = await _hold(provider, 3)
            with pytest.raises(ProviderTimeout, match="no free connection in the pool"):
                await provider.complete(request(CLAUDE, Message(Role.USER, "Again.")))
            for stream in held:
                await stream.aclose()
    finally:
        await provider.aclose()
    # Six calls got a connection at once; the two that found none count as timeouts only.
    assert recorder.wait_s == [0.0] * 6
    assert recorder.timeouts == 2


async def test_a_call_that_queued_reports_its_wait(emulator: Emulator) -> None:
    # The holder's upstream pauses briefly, then finishes and frees the one connection.
    emulator.set_behavior(CLAUDE, Behavior(output_tokens=3, stall_after_tokens=1, stall_s=0.1))
    recorder = _Recorder()
    provider = _provider(emulator, recorder, connections=1)
    try:
        (holder,) = await _hold(provider, 1)
        emulator.set_behavior(CLAUDE, Behavior(output_tokens=3))
        completion = await provider.complete(request(CLAUDE, Message(Role.USER, "Next.")))
        assert completion.text
        await holder.aclose()
    finally:
        await provider.aclose()
    assert recorder.wait_s[0] == 0.0
    assert 0.0 < recorder.wait_s[1] < 0.3
    assert recorder.timeouts == 0


async def _reset_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Take a whole request, then reset the connection without answering."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_a_connection_lost_after_the_request_went_out_is_not_a_connect_error() -> None:
    # The provider may have taken the request (and billed it): "ConnectError" would say
    # it never got there.
    server = await asyncio.start_server(_reset_after_request, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = Connection(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1")
    provider = OpenAIProvider("local", connection, models={})
    try:
        with pytest.raises(RouterError) as caught:
            await provider.complete(request(GPT_4O_MINI, Message(Role.USER, "Hi.")))
    finally:
        await provider.aclose()
        server.close()
        await server.wait_closed()
    assert "ReadError" in str(caught.value)
    assert "ConnectError" not in str(caught.value)


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as unused:  # bound, never listening: connecting to it is refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        connection = Connection(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1")
        provider = OpenAIProvider("local", connection, models={})
        try:
            with pytest.raises(RouterError, match="ConnectError"):
                await provider.complete(request(GPT_4O_MINI, Message(Role.USER, "Hi.")))
        finally:
            await provider.aclose()


async def _one_big_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = b"x" * (1024 * 1024)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()


async def test_a_fast_body_is_read_in_bounded_pieces() -> None:
    # What a stream whose caller stopped reading holds in the router is bounded by this.
    server = await asyncio.start_server(_one_big_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = AiohttpTransport(
        max_connections=1,
        keepalive_expiry_s=None,
        watch=PoolWatch(provider="local", max_connections=1, pool_timeout_s=5.0),
    )
    pieces: list[int] = []
    try:
        async with (
            httpx2.AsyncClient(transport=transport) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/") as response,
        ):
            async for piece in response.aiter_raw():
                pieces.append(len(piece))
    finally:
        server.close()
        await server.wait_closed()
    assert sum(pieces) == 1024 * 1024
    assert max(pieces) <= READ_BUFFER_BYTES
