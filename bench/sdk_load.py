"""The Python load client: the official `openai` SDK (AsyncOpenAI) in one process.

It drives the direct-SDK column (the stand-in upstream called directly) and the LiteLLM
column (the proxy's OpenAI-compatible endpoint), so both are measured by the same client.
Run as its own process by the bench, one load per run:

    python -m bench.sdk_load --base-url URL --model M --concurrency 16 --duration 5 \
        --prompt "tokens=16" [--stream] --out run.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import openai
from openai.types.chat import ChatCompletionMessageParam

from bench.ghz import Call
from bench.loadrun import LoadRun
from bench.sdk_client import sdk_client


@dataclass(frozen=True)
class SdkLoad:
    base_url: str
    model: str
    prompt: str
    concurrency: int
    stream: bool = False
    duration_s: float | None = None
    """Keep calling for this long (calls in flight at the end finish and count)."""
    total: int | None = None
    """Or: exactly this many calls in all."""
    timeout_s: float = 120.0
    api_key: str = "bench-not-a-key"
    http: str = "httpx"
    """The SDK's HTTP client: its default (httpx) or its own aiohttp transport."""


def _client(load: SdkLoad) -> openai.AsyncOpenAI:
    return sdk_client(
        load.base_url,
        load.api_key,
        connections=load.concurrency + 16,
        timeout_s=load.timeout_s,
        http=load.http,
    )


async def _one(client: openai.AsyncOpenAI, load: SdkLoad) -> tuple[Call, int]:
    """One call: (what happened, content chunks received)."""
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": load.prompt}]
    started = time.time()
    chunks = 0
    try:
        if load.stream:
            stream = await client.chat.completions.create(
                model=load.model, messages=messages, stream=True
            )
            async with stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        chunks += 1
        else:
            await client.chat.completions.create(model=load.model, messages=messages)
    except (openai.APIError, OSError) as exc:
        return Call(started, time.time(), type(exc).__name__, str(exc)[:200]), chunks
    return Call(started, time.time(), "OK", ""), chunks


async def run_load(name: str, load: SdkLoad) -> LoadRun:
    """Run `load` in this process; `concurrency` workers call back to back."""
    client = _client(load)
    calls: list[Call] = []
    chunks = 0
    remaining = load.total
    deadline = float("inf")

    async def worker() -> None:
        nonlocal chunks, remaining
        while True:
            if remaining is not None:
                if remaining <= 0:
                    return
                remaining -= 1
            elif time.monotonic() >= deadline:
                return
            call, received = await _one(client, load)
            calls.append(call)
            chunks += received

    try:
        # Up to 100 calls of the same kind at once: connections open and the SDK's lazy
        # set-up for streams done before the clock starts, as in a client that has been
        # running (ghz connects its up to 100 before its first call).
        warm = dataclasses.replace(load, prompt="tokens=1")
        await asyncio.gather(*(_one(client, warm) for _ in range(min(load.concurrency, 100))))
        started = time.monotonic()
        if load.duration_s:
            deadline = started + load.duration_s
        await asyncio.gather(*(worker() for _ in range(load.concurrency)))
        wall_s = time.monotonic() - started
    finally:
        await client.close()
    return LoadRun(
        name=name,
        concurrency=load.concurrency,
        calls=tuple(sorted(calls, key=lambda c: c.start_s)),
        wall_s=wall_s,
        chunks=chunks,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_load", description=__doc__)
    parser.add_argument("--name", default="sdk")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--total", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--http", choices=("httpx", "aiohttp"), default="httpx")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = SdkLoad(
        base_url=args.base_url,
        model=args.model,
        prompt=args.prompt,
        concurrency=args.concurrency,
        stream=args.stream,
        duration_s=args.duration,
        total=args.total,
        http=args.http,
        # From the environment, not argv: LiteLLM's is a (throwaway) master key.
        api_key=os.environ.get("BENCH_API_KEY", "bench-not-a-key"),
    )
    asyncio.run(run_load(args.name, load)).save(args.out)


if __name__ == "__main__":
    main()
