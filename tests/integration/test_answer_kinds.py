"""What real provider answers carry, as a gRPC caller sees it: refusals (with and without
the route's refusal fallback), every documented stop reason, usage the provider left out,
and the model snapshot that answered. Unary and streaming, both providers, through the
official SDKs against the emulator."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from dataclasses import dataclass

import pytest
from modelrouter_client import AsyncModelRouterClient, pb
from modelrouter_server.config.schema import Tokenizer
from modelrouter_server.context import shipped_encoding
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import StartRouter

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"
O3 = "o3-mini-2025-01-31"
REFUSAL = "I'm sorry, I can't assist with that request."


@dataclass(frozen=True)
class Reply:
    """A unary reply or a collected stream, in the terms both share."""

    text: str
    refusal_deltas: str
    finish_reason: int
    refusal: pb.Refusal
    has_refusal: bool
    usage: pb.Usage
    model: str
    provider_model: str
    finish_detail: str
    attempts: list[pb.Attempt]
    start_model: str = ""


async def _ask(
    client: AsyncModelRouterClient, streaming: bool, prompt: str = "Hello there.", **options: object
) -> Reply:
    if not streaming:
        r = await client.generate(prompt, **options)  # type: ignore[arg-type]
        return Reply(
            text=r.text,
            refusal_deltas="",
            finish_reason=r.finish_reason,
            refusal=r.refusal,
            has_refusal=r.HasField("refusal"),
            usage=r.usage,
            model=r.model,
            provider_model=r.provider_model,
            finish_detail=r.finish_detail,
            attempts=list(r.attempts),
        )
    events = [e async for e in client.stream(prompt, **options)]  # type: ignore[arg-type]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("finish") == 1
    finish = events[-1].finish
    return Reply(
        text="".join(e.delta.text for e in events if e.WhichOneof("event") == "delta"),
        refusal_deltas="".join(
            e.refusal_delta.text for e in events if e.WhichOneof("event") == "refusal_delta"
        ),
        finish_reason=finish.finish_reason,
        refusal=finish.refusal,
        has_refusal=finish.HasField("refusal"),
        usage=finish.usage,
        model=finish.model,
        provider_model=finish.provider_model,
        finish_detail=finish.finish_detail,
        attempts=list(finish.attempts),
        start_model=events[0].start.model,
    )


MODES = pytest.mark.parametrize("streaming", [False, True], ids=["unary", "stream"])


# -- refusals ---------------------------------------------------------------------------


@MODES
async def test_an_openai_refusal_is_an_answer_with_its_text_and_finish_reason(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    emulator.set_behavior(GPT, Behavior(refusal=REFUSAL))
    reply = await _ask(router, streaming, task=pb.TASK_CHAT)
    assert reply.finish_reason == pb.FINISH_REASON_REFUSAL
    assert reply.has_refusal and reply.refusal.text == REFUSAL
    # OpenAI never puts a refusal in the content: the answer text stays empty.
    assert reply.text == ""
    if streaming:
        assert reply.refusal_deltas == REFUSAL
    assert reply.model == GPT
    assert [a.outcome for a in reply.attempts] == [pb.ATTEMPT_OUTCOME_SUCCESS]
    assert reply.usage.output_tokens > 0 and reply.usage.cost_usd > 0


@MODES
async def test_an_anthropic_refusal_carries_its_text_and_stop_details(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    emulator.set_behavior(
        CLAUDE,
        Behavior(
            refusal="I can't help with that.",
            refusal_category="cyber",
            refusal_explanation="The request could enable cyber harm.",
        ),
    )
    reply = await _ask(router, streaming, model="claude-3-7-sonnet")
    assert reply.finish_reason == pb.FINISH_REASON_REFUSAL
    # Anthropic marks the whole answer: its text streams as deltas and is the refusal's.
    assert reply.text == "I can't help with that."
    assert reply.refusal.text == "I can't help with that."
    assert reply.refusal.category == "cyber"
    assert reply.refusal.explanation == "The request could enable cyber harm."
    assert reply.refusal_deltas == ""


@MODES
async def test_an_anthropic_refusal_with_no_text_is_still_marked(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    emulator.set_behavior(CLAUDE, Behavior(refusal=""))
    reply = await _ask(router, streaming, model="claude-3-7-sonnet")
    assert reply.finish_reason == pb.FINISH_REASON_REFUSAL
    assert reply.has_refusal and reply.refusal.text == "" and reply.text == ""
    assert reply.refusal.category == ""


@MODES
async def test_with_refusal_fallback_the_next_candidate_answers_and_the_refusal_is_recorded(
    start_router: StartRouter, emulator: Emulator, streaming: bool
) -> None:
    router = await start_router(routing={"refusal_fallback": ["chat"]})
    emulator.set_behavior(GPT, Behavior(refusal=REFUSAL))
    reply = await _ask(router, streaming, task=pb.TASK_CHAT)
    assert reply.model == CLAUDE
    assert reply.finish_reason == pb.FINISH_REASON_STOP
    assert not reply.has_refusal and reply.refusal_deltas == "" and reply.text
    assert [(a.model, a.outcome) for a in reply.attempts] == [
        (GPT, pb.ATTEMPT_OUTCOME_REFUSED),
        (CLAUDE, pb.ATTEMPT_OUTCOME_SUCCESS),
    ]
    assert reply.attempts[0].grpc_code == 0
    if streaming:
        # The refusal was held back, so the stream starts with the model that answered.
        assert reply.start_model == CLAUDE


@MODES
async def test_refusal_fallback_is_per_route_and_off_by_default(
    start_router: StartRouter, emulator: Emulator, streaming: bool
) -> None:
    router = await start_router(routing={"refusal_fallback": ["reasoning"]})
    emulator.set_behavior(GPT, Behavior(refusal=REFUSAL))
    reply = await _ask(router, streaming, task=pb.TASK_CHAT)
    assert reply.model == GPT and reply.finish_reason == pb.FINISH_REASON_REFUSAL
    assert [a.outcome for a in reply.attempts] == [pb.ATTEMPT_OUTCOME_SUCCESS]


@MODES
async def test_a_refusal_passed_over_is_returned_when_no_later_candidate_answers(
    start_router: StartRouter, emulator: Emulator, streaming: bool
) -> None:
    router = await start_router(routing={"refusal_fallback": ["chat"]})
    emulator.set_behavior(GPT, Behavior(refusal=REFUSAL))
    emulator.set_behavior(CLAUDE, Behavior(error_status=500))
    reply = await _ask(router, streaming, task=pb.TASK_CHAT)
    assert reply.model == GPT
    assert reply.finish_reason == pb.FINISH_REASON_REFUSAL
    assert reply.refusal.text == REFUSAL
    if streaming:
        assert reply.refusal_deltas == REFUSAL and reply.start_model == GPT
    outcomes = [(a.model, a.outcome) for a in reply.attempts]
    assert outcomes[0] == (GPT, pb.ATTEMPT_OUTCOME_REFUSED)
    assert {o for m, o in outcomes[1:]} == {pb.ATTEMPT_OUTCOME_ERROR}


# -- stop reasons -----------------------------------------------------------------------

STOP_REASONS = [
    (CLAUDE, "end_turn", pb.FINISH_REASON_STOP),
    (CLAUDE, "max_tokens", pb.FINISH_REASON_LENGTH),
    (CLAUDE, "stop_sequence", pb.FINISH_REASON_STOP_SEQUENCE),
    (CLAUDE, "tool_use", pb.FINISH_REASON_TOOL_CALL),
    (CLAUDE, "pause_turn", pb.FINISH_REASON_PAUSED),
    (CLAUDE, "refusal", pb.FINISH_REASON_REFUSAL),
    (CLAUDE, "model_context_window_exceeded", pb.FINISH_REASON_CONTEXT_WINDOW),
    (CLAUDE, "a_reason_from_the_future", pb.FINISH_REASON_UNSPECIFIED),
    (GPT, "stop", pb.FINISH_REASON_STOP),
    (GPT, "length", pb.FINISH_REASON_LENGTH),
    (GPT, "tool_calls", pb.FINISH_REASON_TOOL_CALL),
    (GPT, "content_filter", pb.FINISH_REASON_CONTENT_FILTER),
    (GPT, "function_call", pb.FINISH_REASON_TOOL_CALL),
    (GPT, "a_reason_from_the_future", pb.FINISH_REASON_UNSPECIFIED),
]


@MODES
@pytest.mark.parametrize(
    ("model", "wire", "expected"), STOP_REASONS, ids=[f"{m[:6]}-{w}" for m, w, _ in STOP_REASONS]
)
async def test_every_documented_stop_reason_reaches_the_caller_as_its_finish_reason(
    router: AsyncModelRouterClient,
    emulator: Emulator,
    streaming: bool,
    model: str,
    wire: str,
    expected: int,
) -> None:
    emulator.set_behavior(model, Behavior(stop_reason=wire, output_tokens=6))
    reply = await _ask(router, streaming, model=model, disable_fallback=True)
    assert reply.finish_reason == expected
    assert reply.model == model
    assert reply.has_refusal == (expected == pb.FINISH_REASON_REFUSAL)


@MODES
async def test_a_length_stop_spent_on_reasoning_says_so(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    emulator.set_behavior(O3, Behavior(reasoning_tokens=5000))
    reply = await _ask(router, streaming, model="o3-mini", max_output_tokens=64)
    assert reply.finish_reason == pb.FINISH_REASON_LENGTH
    assert reply.text == ""
    assert reply.usage.reasoning_tokens == 64 == reply.usage.output_tokens
    assert "reasoning used 64 of 64 output tokens" in reply.finish_detail


@MODES
async def test_a_normal_answer_has_no_finish_detail(
    router: AsyncModelRouterClient, streaming: bool
) -> None:
    reply = await _ask(router, streaming, model="o3-mini")
    assert reply.finish_reason == pb.FINISH_REASON_STOP and reply.finish_detail == ""


# -- usage --------------------------------------------------------------------------------


@MODES
async def test_provider_usage_wins_when_sent(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    emulator.set_behavior(GPT, Behavior(text=" antidisestablishmentarianism prevails"))
    reply = await _ask(router, streaming, model="gpt-4o-mini")
    # The emulator bills a word as one token; tiktoken would count more for these words.
    assert reply.usage.output_tokens == 2
    assert reply.usage.count_method == pb.COUNT_METHOD_PROVIDER


@MODES
async def test_openai_usage_left_out_is_counted_exactly_by_the_router(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    text = " antidisestablishmentarianism prevails"
    emulator.set_behavior(GPT, Behavior(text=text))
    sent = await _ask(router, streaming, model="gpt-4o-mini")
    emulator.set_behavior(GPT, Behavior(text=text, omit_usage=True))
    counted = await _ask(router, streaming, model="gpt-4o-mini")
    assert counted.text == text
    assert counted.usage.count_method == pb.COUNT_METHOD_EXACT_LOCAL
    # The prompt count matches what the provider billed (the emulator bills o200k exactly).
    assert counted.usage.input_tokens == sent.usage.input_tokens > 0
    o200k = shipped_encoding(Tokenizer.O200K_BASE)
    assert counted.usage.output_tokens == len(o200k.encode_ordinary(text)) > 2
    assert counted.usage.cost_usd > 0


@MODES
async def test_claude_usage_left_out_is_the_calibrated_estimate(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    prompt = "Explain the difference between a mutex and a semaphore, with an example. " * 4
    sent = await _ask(router, streaming, prompt, model="claude-3-7-sonnet")
    emulator.set_behavior(CLAUDE, Behavior(omit_usage=True))
    counted = await _ask(router, streaming, prompt, model="claude-3-7-sonnet")
    assert counted.text == sent.text
    assert counted.usage.count_method == pb.COUNT_METHOD_ESTIMATE
    exact_in, estimated_in = sent.usage.input_tokens, counted.usage.input_tokens
    assert 0.8 * exact_in <= estimated_in <= 1.5 * exact_in
    assert counted.usage.output_tokens > 0 and counted.usage.cost_usd > 0


async def test_a_local_count_after_a_reasoning_model_is_only_an_estimate(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(O3, Behavior(omit_usage=True, reasoning_tokens=100))
    reply = await _ask(router, False, model="o3-mini")
    # The hidden reasoning cannot be counted locally: the figure is a labelled lower bound.
    assert reply.usage.count_method == pb.COUNT_METHOD_ESTIMATE
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0


# -- the model that answered ------------------------------------------------------------


@MODES
@pytest.mark.parametrize("model", [GPT, CLAUDE])
async def test_the_reply_names_the_snapshot_the_provider_says_answered(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool, model: str
) -> None:
    reply = await _ask(router, streaming, model=model)
    assert reply.model == reply.provider_model == model
    emulator.set_behavior(model, Behavior(response_model=f"{model}-snapshot-7"))
    reply = await _ask(router, streaming, model=model)
    assert reply.model == model
    assert reply.provider_model == f"{model}-snapshot-7"


# -- metrics --------------------------------------------------------------------------------


async def test_refusals_finish_reasons_and_local_counts_show_in_metrics(
    start_router: StartRouter, emulator: Emulator
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    router = await start_router(server={"metrics_port": port, "shutdown_grace_s": 0.5})
    emulator.set_behavior(GPT, Behavior(refusal=REFUSAL, omit_usage=True))
    await _ask(router, False, model="gpt-4o-mini")
    await _ask(router, True, model="gpt-4o-mini")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    lines = (await asyncio.to_thread(scrape)).splitlines()
    labels = 'model="gpt-4o-mini-2024-07-18",provider="openai"'
    assert f"modelrouter_refusals_total{{{labels}}} 2.0" in lines
    assert f'modelrouter_finish_reasons_total{{{labels},reason="refusal"}} 2.0' in lines
    assert f'modelrouter_usage_counted_locally_total{{method="exact_local",{labels}}} 2.0' in lines


# -- conversations --------------------------------------------------------------------------


@MODES
async def test_a_conversation_keeps_a_refusal_and_goes_on_after_it(
    router: AsyncModelRouterClient, emulator: Emulator, streaming: bool
) -> None:
    conversation = await router.create_conversation()
    emulator.enqueue(CLAUDE, Behavior(refusal=""))
    refused = await _ask(
        router,
        streaming,
        "Do the forbidden thing.",
        model="claude-3-7-sonnet",
        conversation_id=conversation.id,
    )
    assert refused.finish_reason == pb.FINISH_REASON_REFUSAL and refused.text == ""
    emulator.enqueue(GPT, Behavior(refusal=REFUSAL))
    await _ask(router, streaming, "Please?", model="gpt-4o-mini", conversation_id=conversation.id)
    # The refusals are stored as assistant turns the APIs accept, so the talk goes on.
    answered = await _ask(
        router,
        streaming,
        "Something else, then.",
        model="claude-3-7-sonnet",
        conversation_id=conversation.id,
    )
    assert answered.finish_reason == pb.FINISH_REASON_STOP and answered.text
    stored = await router.get_conversation(conversation.id)
    replies = [m.message.content for m in stored.messages if m.message.role == pb.ROLE_ASSISTANT]
    assert replies[:2] == ["[no answer: the model refused]", REFUSAL]


async def test_a_stream_cut_mid_answer_bills_the_broken_leg_on_a_local_count(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.enqueue(GPT, Behavior(drop_after_tokens=5, output_tokens=40))
    emulator.set_behavior(CLAUDE, Behavior(output_tokens=40))
    events = [e async for e in router.stream("Write a poem.", task=pb.TASK_CHAT)]
    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    finish = events[-1].finish
    [at] = finish.resumed_at_chars
    # GPT's 5 tokens before the drop, counted with o200k, plus Claude's billed words.
    o200k = shipped_encoding(Tokenizer.O200K_BASE)
    expected = len(o200k.encode_ordinary(text[:at])) + len(text[at:].split())
    assert finish.usage.output_tokens == expected
    assert finish.usage.count_method == pb.COUNT_METHOD_EXACT_LOCAL


@MODES
async def test_a_refusal_passed_over_survives_a_later_model_rejecting_the_request(
    start_router: StartRouter, emulator: Emulator, streaming: bool
) -> None:
    router = await start_router(routing={"refusal_fallback": ["chat"]})
    emulator.set_behavior(GPT, Behavior(refusal=REFUSAL))
    emulator.set_behavior(CLAUDE, Behavior(error_status=400))
    reply = await _ask(router, streaming, task=pb.TASK_CHAT)
    assert reply.finish_reason == pb.FINISH_REASON_REFUSAL and reply.refusal.text == REFUSAL
    assert [a.outcome for a in reply.attempts] == [
        pb.ATTEMPT_OUTCOME_REFUSED,
        pb.ATTEMPT_OUTCOME_ERROR,
    ]


@MODES
async def test_an_anthropic_refusal_after_streamed_text_is_only_passed_over_in_unary(
    start_router: StartRouter, emulator: Emulator, streaming: bool
) -> None:
    router = await start_router(routing={"refusal_fallback": ["code"]})
    emulator.set_behavior(CLAUDE, Behavior(refusal="I won't write that."))
    reply = await _ask(router, streaming, task=pb.TASK_CODE)
    if streaming:
        # Its text was already streamed as answer text before the refusal stop: the
        # client has seen it, so the refusal stands.
        assert reply.model == CLAUDE and reply.finish_reason == pb.FINISH_REASON_REFUSAL
        assert reply.text == "I won't write that."
    else:
        assert reply.model == O3 and reply.finish_reason == pb.FINISH_REASON_STOP
        assert reply.attempts[0].outcome == pb.ATTEMPT_OUTCOME_REFUSED
