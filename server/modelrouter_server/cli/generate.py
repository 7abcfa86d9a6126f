"""`modelrouter generate`: one prompt, one reply, unary or streamed.

The reply text goes to stdout and the usage line to stderr, so `> answer.txt` captures only
the answer. `--json` prints the response (or each stream event) as protobuf JSON instead.
`--tools FILE` offers the tools defined in FILE (a JSON list of {name, description,
input_schema}); the calls the model makes are printed as JSON lines, one per call.
`--schema FILE` asks for JSON valid against the JSON Schema in FILE (structured output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
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
    tools: tuple[pb.Tool, ...] = ()
    response_format: pb.ResponseFormat | None = None

    def options(self) -> dict[str, object]:
        """The request options besides the messages."""
        options: dict[str, object] = {
            "model": self.model,
            "task": TASKS[self.task],
            "max_output_tokens": self.max_output_tokens,
        }
        if self.tools:
            options["tools"] = list(self.tools)
        if self.response_format is not None:
            options["response_format"] = self.response_format
        return options


class BadFile(Exception):
    """A --tools or --schema file that cannot be used; the message names it."""


def _json_file(path: str, option: str) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise BadFile(f"{option} {path}: {exc}") from exc


def read_tools(path: str) -> tuple[pb.Tool, ...]:
    """Tool definitions from a JSON file: a list of {name, description, input_schema}."""
    raw = _json_file(path, "--tools")
    if not isinstance(raw, list):
        raise BadFile(f"--tools {path}: expected a JSON list of tools")
    tools = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadFile(f"--tools {path}: tool {i} needs a string name")
        try:
            tools.append(json_format.ParseDict(item, pb.Tool()))
        except json_format.ParseError as exc:
            raise BadFile(f"--tools {path}: tool {i}: {exc}") from exc
    return tuple(tools)


def read_schema(path: str) -> pb.ResponseFormat:
    """A JSON-schema response format from a file holding the schema."""
    raw = _json_file(path, "--schema")
    if not isinstance(raw, dict):
        raise BadFile(f"--schema {path}: expected a JSON Schema object")
    fmt = pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA)
    fmt.schema.update(raw)
    return fmt


def _print_tool_calls(calls: Sequence[pb.ToolCall]) -> None:
    for call in calls:
        arguments = json_format.MessageToDict(call.arguments)
        print(json.dumps({"id": call.id, "name": call.name, "arguments": arguments}))


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
    parser.add_argument(
        "--tools",
        metavar="FILE",
        help="offer these tools (JSON list of name/description/"
        "input_schema); calls are printed as JSON lines",
    )
    parser.add_argument(
        "--schema", metavar="FILE", help="ask for JSON valid against this JSON Schema"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    prompt = read_prompt(list(args.prompt), sys.stdin)
    if not prompt:
        print("modelrouter generate: empty prompt", file=sys.stderr)
        return 2
    try:
        tools = read_tools(args.tools) if args.tools else ()
        response_format = read_schema(args.schema) if args.schema else None
    except BadFile as exc:
        print(f"modelrouter generate: {exc}", file=sys.stderr)
        return 2
    settings = GenerateSettings(
        tools=tools,
        response_format=response_format,
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
    response = await client.generate(messages, **settings.options())  # type: ignore[arg-type]
    if settings.json:
        print(json_format.MessageToJson(response, indent=2))
        return EXIT_OK
    refused = response.finish_reason == pb.FINISH_REASON_REFUSAL
    # OpenAI's refusal text comes apart from the answer text: show whichever was said.
    if response.text or not response.tool_calls:
        print(response.text or (response.refusal.text if refused else ""))
    _print_tool_calls(response.tool_calls)
    _note_finish(response.finish_reason, response.finish_detail)
    timing = f"{format_seconds(time.monotonic() - started)} total"
    print(usage_line(response.model, response.provider, response.usage, timing), file=sys.stderr)
    return EXIT_OK


async def _stream(
    client: AsyncModelRouterClient, messages: list[pb.Message], settings: GenerateSettings
) -> int:
    meter = ReplyMeter()
    finish: pb.StreamFinish | None = None
    async for event in client.stream(messages, **settings.options()):  # type: ignore[arg-type]
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
    _print_tool_calls(finish.tool_calls)
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
