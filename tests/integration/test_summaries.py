"""The composition root wires the summarizer through the fallback chain: over real gRPC, a
failing summarizer model is retried, opens its circuit, and is then skipped, while the
requests it would have shortened are still answered."""

from __future__ import annotations

from modelrouter_client import assistant, pb, system, user
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import TEST_OVERRIDES, StartRouter

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"


def long_history() -> list[pb.Message]:
    """Far past a 1% summarize threshold of Claude's window (about 2,000 tokens)."""
    messages = [system("Be brief.")]
    for i in range(30):
        messages.append(user(f"question {i}:" + " fact" * 100))
        messages.append(assistant(f"answer {i}:" + " fact" * 100))
    messages.append(user("Go on."))
    return messages


def summarizer_calls(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.model == GPT)


async def test_summaries_are_retried_open_their_circuit_and_are_then_skipped(
    start_router: StartRouter, emulator: Emulator
) -> None:
    resilience = {
        **TEST_OVERRIDES["resilience"],
        "max_attempts_per_model": 2,
        "breaker_fail_max": 3,
        # Long enough that the circuit cannot turn half-open within the test.
        "breaker_reset_timeout_s": 600.0,
    }
    client = await start_router(
        resilience=resilience,
        context={"store": "memory", "summarize_threshold": 0.01, "summarizer_model": GPT},
    )
    emulator.set_behavior(GPT, Behavior(error_status=500))
    messages = long_history()

    first = await client.generate(messages, model=CLAUDE, disable_fallback=True)
    assert summarizer_calls(emulator) == 2  # the first try and its retry
    assert first.model == CLAUDE and first.context.summarized_messages == 0

    await client.generate(messages, model=CLAUDE, disable_fallback=True)
    assert summarizer_calls(emulator) == 3  # the third failure opened the circuit

    third = await client.generate(messages, model=CLAUDE, disable_fallback=True)
    assert summarizer_calls(emulator) == 3  # skipped: the circuit is open
    assert third.text.strip() and third.context.summarized_messages == 0
