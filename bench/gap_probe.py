"""Inter-token gaps: paced streams read by a Python client that notes when each token
arrives, for the "added inter-token p99" target.

The stand-in sends a token every `delay_ms`; what a caller sees between two tokens is that
delay plus whatever each hop added to one token and not the other. The same row runs
against the stand-in directly and through each system, each read by a lean client (SSE
lines over httpx; `modelrouter_client` for modelrouter), so the difference of the two p99s
is what the system adds. A delta that carries several
tokens (modelrouter joins the text that is already there when it writes) counts each of
them: the first after the gap since the previous delta, the rest after none. The first
token of a stream is left out: its wait is the stream's setup, not a gap. So a system that
held every token back and sent them at the end would show short gaps here: the 200-token
and burst rows are where a delay of the whole answer shows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx2
from modelrouter_client import AsyncModelRouterClient

from bench.settings import StreamRow


@dataclass
class Gaps:
    """Seconds between consecutive tokens of the probe's streams, as the client got them."""

    gaps_s: list[float] = field(default_factory=list)
    streams: int = 0
    failures: int = 0
    """Streams that failed or ended short."""


def _tokens_in(text: str) -> int:
    """How many of the stand-in's words a delta carries (each of its WORDS ends in one
    space)."""
    return text.count(" ")


async def _noted(deltas: AsyncIterator[str], expected: int, gaps: Gaps) -> None:
    """Note the gaps of one stream's text deltas; count a short stream as a failure."""
    seen, last = 0, 0.0
    async for text in deltas:
        tokens = _tokens_in(text)
        if not tokens:
            continue
        now = time.monotonic()
        if seen:
            gaps.gaps_s.append(now - last)
        gaps.gaps_s.extend(0.0 for _ in range(tokens - 1))
        seen, last = seen + tokens, now
    if seen == expected:
        gaps.streams += 1
    else:
        gaps.failures += 1


async def _run(row: StreamRow, one: Callable[[Gaps], Awaitable[None]]) -> Gaps:
    """`row.total` streams, `row.concurrency` at a time."""
    gaps = Gaps()
    gate = asyncio.Semaphore(row.concurrency)

    async def guarded() -> None:
        async with gate:
            try:
                await one(gaps)
            except Exception:  # counted in the report: one stream lost, not the system's row
                gaps.failures += 1

    await asyncio.gather(*(guarded() for _ in range(row.total or row.concurrency)))
    return gaps


async def gaps_router(target: str, model: str, row: StreamRow) -> Gaps:
    """The row's streams through modelrouter's GenerateStream."""
    async with AsyncModelRouterClient(target) as client:

        async def texts() -> AsyncIterator[str]:
            async for event in client.stream(row.prompt, model=model, timeout=120):
                if event.WhichOneof("event") == "delta":
                    yield event.delta.text

        return await _run(row, lambda gaps: _noted(texts(), row.tokens, gaps))


async def gaps_sse(base_url: str, model: str, api_key: str, row: StreamRow) -> Gaps:
    """The row's streams from an OpenAI-compatible endpoint (the stand-in directly, or a
    proxy), read as SSE lines over httpx: a client about as lean per chunk as
    modelrouter's, where the SDK's own parsing would add its cost to the baseline."""
    headers = {"authorization": f"Bearer {api_key}"}
    body = {"model": model, "messages": [{"role": "user", "content": row.prompt}], "stream": True}
    limits = httpx2.Limits(max_connections=row.concurrency + 4)
    async with httpx2.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:

        async def texts() -> AsyncIterator[str]:
            async with client.stream(
                "POST", "/chat/completions", json=body, headers=headers
            ) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    text = choices[0].get("delta", {}).get("content")
                    if text:
                        yield text

        return await _run(row, lambda gaps: _noted(texts(), row.tokens, gaps))
