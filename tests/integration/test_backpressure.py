"""Backpressure through real gRPC: when a client stops reading a stream, the router stops
pulling the answer from the provider, so the provider's response stays open and unfinished
while another client's stream of the same answer runs to its end; nothing is lost when the
first client reads again.

The answer's tokens are long (1 KB each) so that what the kernel's socket buffers can hold
between the emulator and the router (a few MB) is a small part of it. The client that
stops reading keeps gRPC's default 64 KB stream window (no BDP probing, which would let
the client's transport take the whole answer into its own memory)."""

from __future__ import annotations

import grpc
from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import StartRouter

CLAUDE = "claude-3-7-sonnet-20250219"
ANSWER_TOKENS = 20_000
_TOKEN = " " + "w" * 1023
_ANSWER = _TOKEN * ANSWER_TOKENS


async def test_a_client_that_stops_reading_stops_the_upstream_stream(
    start_router: StartRouter, emulator: Emulator
) -> None:
    emulator.set_behavior("*", Behavior(text=_ANSWER, thinking_tokens=0))
    router = await start_router(resilience={"inter_token_timeout_s": 600.0})
    options = {"model": CLAUDE, "max_output_tokens": 64_000, "disable_fallback": True}
    channel = grpc.aio.insecure_channel(router.target, options=[("grpc.http2.bdp_probe", 0)])
    async with AsyncModelRouterClient(channel=channel, default_timeout=600) as idle:
        stalled = idle.stream("Write at length.", **options)  # type: ignore[arg-type]
        assert (await anext(stalled)).WhichOneof("event") == "start"
        held = emulator.requests[-1]

        # Another client reads the same answer to its end: the router had all the time it
        # needed to pull the unread stream too, had it kept on reading it.
        async with AsyncModelRouterClient(router.target, default_timeout=600) as reader:
            events = [e async for e in reader.stream("Write at length.", **options)]  # type: ignore[arg-type]
        assert events[-1].WhichOneof("event") == "finish"
        assert emulator.requests[-1].tokens_sent == ANSWER_TOKENS
        assert held.outcome is None, "the unread stream's provider response must stay open"
        assert held.tokens_sent < ANSWER_TOKENS // 2

        # Nothing was lost: reading again delivers the whole answer.
        rest = [e async for e in stalled]
        text = "".join(e.delta.text for e in rest if e.WhichOneof("event") == "delta")
        assert rest[-1].WhichOneof("event") == "finish"
        assert held.tokens_sent == ANSWER_TOKENS
        assert len(text) > len(_ANSWER) - 2 * len(_TOKEN)  # all but the first delta(s) read
