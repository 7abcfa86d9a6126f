"""`modelrouter generate`: one prompt, one reply, unary or streamed.

The reply text goes to stdout and the usage line to stderr, so `> answer.txt` captures only
the answer. `--json` prints the response (or each stream event) as protobuf JSON instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass

import grpc
from google.protobuf import json_format
from modelrouter_client import AsyncModelRouterClient, pb, system, user

from modelrouter_server.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RPC_ERROR,
    TASKS,
    Connection,
    add_connection_arguments,
    connection_from,
    non_negative_int,
    read_prompt,
    report_rpc_error,
    task_name,
)
from modelrouter_server.cli._stats import ReplyMeter, format_rate, format_seconds, format_usd


@dataclass(frozen=True, slots=True)
class GenerateSettings:
    connection: Connection
    prompt: str
    system_prompt: str
    model: str
    task: str
    max_output_tokens: int
    stream: bool
    json: bool


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="one reply to one prompt",
        description="Send one prompt and print the reply; the usage line goes to stderr.",
    )
    add_connection_arguments(parser)
    parser.add_argument("prompt", nargs="*", help="the prompt (default: read stdin)")
    parser.add_argument("--model", default="", help="model id or alias (default: by task)")
    parser.add_argument("--task", type=task_name, default="auto", help="route (default auto)")
    parser.add_argument(
        "--max-output-tokens", type=non_negative_int, default=0, help="0: the model's default"
    )
    parser.add_argument("--system", default="", help="system prompt")
    parser.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    parser.add_argument("--json", action="store_true", help="print protobuf JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    prompt = read_prompt(list(args.prompt), sys.stdin)
    if not prompt:
        print("modelrouter generate: empty prompt", file=sys.stderr)
        return 2
    settings = GenerateSettings(
        connection=connection_from(args),
        prompt=prompt,
        system_prompt=str(args.system),
        model=str(args.model),
        task=str(args.task),
        max_output_tokens=int(args.max_output_tokens),
        stream=bool(args.stream),
        json=bool(args.json),
    )
    try:
        return asyncio.run(generate(settings))
    except KeyboardInterrupt:
        # asyncio.run cancelled the task, and with it the RPC.
        print("\n[cancelled]", file=sys.stderr)
        return EXIT_INTERRUPTED


async def generate(settings: GenerateSettings) -> int:
    messages = [user(settings.prompt)]
    if settings.system_prompt:
        messages.insert(0, system(settings.system_prompt))
    connection = settings.connection
    async with connection.client() as client:
        try:
            if settings.stream:
                return await _stream(client, messages, settings)
            return await _unary(client, messages, settings)
        except grpc.aio.AioRpcError as exc:
            return report_rpc_error(exc, connection)


async def _unary(
    client: AsyncModelRouterClient, messages: list[pb.Message], settings: GenerateSettings
) -> int:
    started = time.monotonic()
    response = await client.generate(
        messages,
        model=settings.model,
        task=TASKS[settings.task],
        max_output_tokens=settings.max_output_tokens,
    )
    if settings.json:
        print(json_format.MessageToJson(response, indent=2))
        return EXIT_OK
    refused = response.finish_reason == pb.FINISH_REASON_REFUSAL
    # OpenAI's refusal text comes apart from the answer text: show whichever was said.
    print(response.text or (response.refusal.text if refused else ""))
    _note_finish(response.finish_reason, response.finish_detail)
    timing = f"{format_seconds(time.monotonic() - started)} total"
    print(usage_line(response.model, response.provider, response.usage, timing), file=sys.stderr)
    return EXIT_OK


async def _stream(
    client: AsyncModelRouterClient, messages: list[pb.Message], settings: GenerateSettings
) -> int:
    meter = ReplyMeter()
    finish: pb.StreamFinish | None = None
    async for event in client.stream(
        messages,
        model=settings.model,
        task=TASKS[settings.task],
        max_output_tokens=settings.max_output_tokens,
    ):
        if settings.json:
            print(json_format.MessageToJson(event, indent=None), flush=True)
        kind = event.WhichOneof("event")
        if kind in ("delta", "refusal_delta"):
            meter.on_text()
            if not settings.json:
                text = event.delta.text if kind == "delta" else event.refusal_delta.text
                sys.stdout.write(text)
                sys.stdout.flush()
        elif kind == "finish":
            finish = event.finish
    if settings.json:
        return EXIT_OK
    print()
    if finish is None:
        print("modelrouter generate: the stream ended without a finish event", file=sys.stderr)
        return EXIT_RPC_ERROR
    meter.finish(finish.usage)
    _note_finish(finish.finish_reason, finish.finish_detail)
    timing = f"ttft {format_seconds(meter.ttft_s)} | {format_rate(meter.tokens_per_second())}"
    print(usage_line(finish.model, finish.provider, finish.usage, timing), file=sys.stderr)
    return EXIT_OK


def _note_finish(reason: pb.FinishReason.ValueType, detail: str) -> None:
    """Say on stderr when the answer is not a plain one: a refusal, or an explained stop."""
    if reason == pb.FINISH_REASON_REFUSAL:
        print("[the model refused]", file=sys.stderr)
    if detail:
        print(f"[{detail}]", file=sys.stderr)


def usage_line(model: str, provider: str, usage: pb.Usage, timing: str) -> str:
    """`[model via provider | timing | N in / M out tokens (R reasoning) | $cost]`"""
    tokens = f"{usage.input_tokens} in / {usage.output_tokens} out tokens"
    if usage.reasoning_tokens:
        tokens += f" ({usage.reasoning_tokens} reasoning)"
    return f"[{model} via {provider} | {timing} | {tokens} | {format_usd(usage.cost_usd)}]"
