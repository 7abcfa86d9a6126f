"""Fitting keeps the start of the prompt stable over real gRPC, so prompt caching survives a
long conversation: once the history outgrows the summarize threshold, a block of old turns
is summarized down to the target share and that summary is reused, byte for byte, turn
after turn, until the prompt outgrows the threshold again. The prefix up to the history's
cache breakpoint therefore changes only at block boundaries, and tool calls stay with their
results in every prompt sent."""

from __future__ import annotations

from typing import Any

from google.protobuf.struct_pb2 import Struct
from modelrouter_client import AsyncModelRouterClient, assistant, pb, system, user
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import StartRouter

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"
LOOKUP = pb.Tool(name="lookup", description="Look a fact up.", input_schema=Struct())
TURNS = 48


def _tool_exchange(turn: int) -> list[pb.Message]:
    call_id = f"call_{turn}"
    return [
        pb.Message(
            role=pb.ROLE_ASSISTANT,
            parts=[pb.Part(tool_call=pb.ToolCall(id=call_id, name="lookup"))],
        ),
        pb.Message(
            role=pb.ROLE_TOOL,
            parts=[
                pb.Part(
                    tool_result=pb.ToolResult(
                        tool_call_id=call_id, content=f"result {turn}:" + " datum" * 60
                    )
                )
            ],
        ),
    ]


def _without_cache_control(value: Any) -> Any:
    """The request without its breakpoints, a string content written as its one text block:
    the breakpoints move every turn (and turn a string into blocks) by design."""
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        value = {**value, "content": [{"type": "text", "text": value["content"]}]}
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _claude_prompts(emulator: Emulator) -> list[dict[str, Any]]:
    bodies = [r.body for r in emulator.requests if r.model == CLAUDE]
    return [_without_cache_control(b) for b in bodies if isinstance(b, dict)]


def _assert_calls_precede_results(messages: list[dict[str, Any]]) -> None:
    """Every tool_result answers a tool_use of the message just before it."""
    for k, message in enumerate(messages):
        content = message["content"]
        results = [
            b["tool_use_id"]
            for b in (content if isinstance(content, list) else [])
            if b.get("type") == "tool_result"
        ]
        if not results:
            continue
        previous = messages[k - 1]["content"]
        calls = {b["id"] for b in previous if isinstance(b, dict) and b["type"] == "tool_use"}
        assert set(results) <= calls, f"orphan tool_result in message {k}"


async def _play(client: AsyncModelRouterClient) -> None:
    messages = [system("You are the operations assistant.")]
    for turn in range(TURNS):
        messages.append(user(f"question {turn}:" + " fact" * 60))
        if turn % 3 == 0:
            messages.extend(_tool_exchange(turn))
        reply = await client.generate(messages, model=CLAUDE, tools=[LOOKUP], disable_fallback=True)
        messages.append(assistant(reply.text))


async def test_the_prompt_prefix_changes_only_at_block_boundaries(
    start_router: StartRouter, emulator: Emulator
) -> None:
    client = await start_router(
        context={
            "store": "memory",
            # About 4,000 tokens of Claude's window: summarizing starts a third of the way in.
            "summarize_threshold": 0.02,
            "summarizer_model": GPT,
            "summary_max_tokens": 100,
        }
    )
    emulator.set_behavior(GPT, Behavior(output_tokens=40))
    emulator.set_behavior(CLAUDE, Behavior(output_tokens=20))

    await _play(client)

    prompts = _claude_prompts(emulator)
    assert len(prompts) == TURNS
    summarized = [
        k
        for k, p in enumerate(prompts)
        if "Summary of the earlier conversation" in str(p["messages"][0]["content"])
    ]
    assert summarized, "the history never outgrew the threshold: the test proves nothing"
    # The next prompt starts with the whole of this one (the newest turn included) unless a
    # new block was summarized in between.
    boundaries = [
        k
        for k in range(summarized[0], TURNS - 1)
        if prompts[k + 1]["system"] != prompts[k]["system"]
        or prompts[k + 1]["messages"][: len(prompts[k]["messages"])] != prompts[k]["messages"]
    ]
    past_threshold = TURNS - summarized[0]
    assert 1 <= len(boundaries) <= past_threshold // 5, boundaries
    # A summarizer call happens only where a new block is summarized.
    summarizer_calls = sum(1 for r in emulator.requests if r.model == GPT)
    assert summarizer_calls == len(boundaries) + 1
    for prompt in prompts:
        _assert_calls_precede_results(prompt["messages"])
