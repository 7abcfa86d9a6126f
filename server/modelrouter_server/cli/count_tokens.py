"""`modelrouter count-tokens`: the input tokens a prompt uses on a model."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

import grpc
from modelrouter_client import pb, system, user

from modelrouter_server.cli._common import (
    EXIT_OK,
    EXIT_USAGE,
    Connection,
    add_connection_arguments,
    connection_from,
    read_prompt,
    report_rpc_error,
)

_METHODS = {
    pb.COUNT_METHOD_UNSPECIFIED: "unspecified",
    pb.COUNT_METHOD_EXACT_LOCAL: "exact, local tokenizer",
    pb.COUNT_METHOD_PROVIDER: "provider's count",
    pb.COUNT_METHOD_ESTIMATE: "estimate",
}


@dataclass(frozen=True, slots=True)
class CountSettings:
    connection: Connection
    text: str
    system_prompt: str
    model: str


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "count-tokens",
        help="count a prompt's input tokens",
        description="Count the input tokens a prompt uses on a model.",
    )
    add_connection_arguments(parser)
    parser.add_argument("text", nargs="*", help="the prompt (default: read stdin)")
    parser.add_argument("--model", default="", help="model id or alias (default route's first)")
    parser.add_argument("--system", default="", help="a system prompt to count too")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    text = read_prompt(list(args.text), sys.stdin)
    if not text:
        print("modelrouter count-tokens: empty prompt", file=sys.stderr)
        return EXIT_USAGE
    settings = CountSettings(
        connection=connection_from(args),
        text=text,
        system_prompt=str(args.system),
        model=str(args.model),
    )
    return asyncio.run(count_tokens(settings))


async def count_tokens(settings: CountSettings) -> int:
    messages = [user(settings.text)]
    if settings.system_prompt:
        messages.insert(0, system(settings.system_prompt))
    connection = settings.connection
    async with connection.client() as client:
        try:
            response = await client.count_tokens(messages, model=settings.model)
        except grpc.aio.AioRpcError as exc:
            return report_rpc_error(exc, connection)
    print(describe_count(response))
    return EXIT_OK


def describe_count(response: pb.CountTokensResponse) -> str:
    """`N input tokens on MODEL (method; P% of its W-token window)`"""
    method = _METHODS.get(response.method, "unknown method")
    share = ""
    if response.context_window:
        percent = 100 * response.input_tokens / response.context_window
        share = f"; {percent:.2f}% of its {response.context_window:,}-token window"
    return f"{response.input_tokens} input tokens on {response.model} ({method}{share})"
