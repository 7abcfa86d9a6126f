"""The provider contract, run over every provider against the emulator.

Each test runs three times (`case`): Anthropic, OpenAI, and an OpenAI-compatible server
(the emulator's OpenAI API again, reached as kind `openai_compatible`). The official SDKs
talk real HTTP to the emulator; nothing is mocked. Tests that only make sense for one
provider (thinking, request parameters) come last.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Literal

import pytest
import pytest_asyncio
from modelrouter_server.config import ProviderKind
from modelrouter_server.domain import (
    FinishReason,
    Message,
    ProviderRequest,
    ReasoningEffort,
    Role,
    StreamEnd,
    TextChunk,
    ThinkingChunk,
)
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.error_facts import facts_for
from modelrouter_server.errors import (
    AuthenticationFailed,
    ContextWindowExceeded,
    InterruptionKind,
    InvalidProviderRequest,
    Overloaded,
    PermissionDenied,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamInterrupted,
    UpstreamModelNotFound,
)
from modelrouter_server.providers import CONTINUE_INSTRUCTION, AnthropicProvider, OpenAIProvider

from ..conftest import CATALOG, PROVIDER_KINDS, build_case, connection
from ..support import (
    API_KEY,
    CLAUDE,
    GPT_4O_MINI,
    O3_MINI,
    Case,
    collect,
    collect_until_error,
    disconnect_of,
    reported,
    request,
)

# Like the router, each provider (and its connection pool) lives through many calls: one
# per module and kind, on one emulator whose script and records are reset before each test.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local(emulator: Emulator) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(
        "local",
        connection(emulator.openai_base_url),
        models=CATALOG,
        kind=ProviderKind.OPENAI_COMPATIBLE,
    )
    yield provider
    await provider.aclose()


Mode = Literal["complete", "stream"]
MODES: tuple[Mode, ...] = ("complete", "stream")


async def call(
    provider: AnthropicProvider | OpenAIProvider, req: ProviderRequest, mode: Mode
) -> None:
    """One call, unary or streamed to its end."""
    if mode == "complete":
        await provider.complete(req)
    else:
        async for _ in provider.stream(req):
            pass


async def fails(
    provider: AnthropicProvider | OpenAIProvider, req: ProviderRequest, mode: Mode
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call(provider, req, mode)
    return caught.value


# --- answers ---------------------------------------------------------------------------


async def test_complete_returns_text_usage_and_finish_reason(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(text=" The sky is blue."))

    completion = await case.provider.complete(case.request())

    assert completion.text == " The sky is blue."
    assert completion.finish_reason is FinishReason.STOP
    assert reported(completion.usage).input_tokens > 0
    assert reported(completion.usage).output_tokens == 4
    [record] = await case.emulator.wait_for_finished()
    assert record.outcome == "ok"


async def test_stream_yields_text_chunks_then_exactly_one_stream_end(case: Case) -> None:
    unary = await case.provider.complete(case.request())

    streamed = await collect(case.provider.stream(case.request()))

    assert all(isinstance(e, TextChunk) for e in streamed.events[:-1])
    assert isinstance(streamed.events[-1], StreamEnd)
    assert len(streamed.events) == 24 + 1
    assert streamed.text == unary.text
    assert streamed.end.finish_reason is FinishReason.STOP
    assert streamed.end.usage == unary.usage
    assert case.emulator.requests[-1].stream


async def test_stop_sequence_ends_the_answer_before_it(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(text=" alpha beta gamma delta"))

    streamed = await collect(case.provider.stream(case.request(stop=(" gamma",))))

    assert streamed.text == " alpha beta"
    body = case.emulator.requests[-1].body
    assert isinstance(body, dict)
    if case.api == "anthropic":
        assert body["stop_sequences"] == [" gamma"]
        assert streamed.end.finish_reason is FinishReason.STOP_SEQUENCE
    else:
        # Chat Completions reports a stop sequence as a plain stop.
        assert body["stop"] == [" gamma"]
        assert streamed.end.finish_reason is FinishReason.STOP


@pytest.mark.parametrize("mode", MODES)
async def test_output_cap_reports_length(case: Case, mode: Mode) -> None:
    req = case.request(max_output_tokens=3)
    if mode == "complete":
        completion = await case.provider.complete(req)
        finish_reason, usage = completion.finish_reason, completion.usage
    else:
        streamed = await collect(case.provider.stream(req))
        finish_reason, usage = streamed.end.finish_reason, streamed.end.usage

    assert finish_reason is FinishReason.LENGTH
    assert reported(usage).output_tokens == 3


async def test_count_tokens_is_the_providers_own_count_or_none(case: Case) -> None:
    messages = (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "How tall is K2?"))

    counted = await case.provider.count_tokens(case.model, messages)

    if case.api == "anthropic":
        completion = await case.provider.complete(request(case.model, *messages))
        assert counted == reported(completion.usage).input_tokens
    else:
        assert counted is None


# --- continuing a partial answer -----------------------------------------------------


def _cut(answer: str, where: str) -> str:
    """A prefix of `answer` ending mid-word, right before a space, or right after one."""
    before_space = answer.index(" ", answer.index(" ", answer.index(" ", 1) + 1) + 1)
    offsets = {"before_space": before_space, "after_space": before_space + 1}
    offsets["mid_word"] = before_space + 2
    return answer[: offsets[where]]


@pytest.mark.parametrize("where", ["mid_word", "before_space", "after_space"])
async def test_continuation_joins_the_uninterrupted_answer(case: Case, where: str) -> None:
    question = Message(Role.USER, "Tell me a story.")
    full = (await case.provider.complete(request(case.model, question))).text
    prefix = _cut(full, where)

    continued = await collect(
        case.provider.stream(request(case.model, question, Message(Role.ASSISTANT, prefix)))
    )

    assert prefix + continued.text == full
    assert continued.end.finish_reason is FinishReason.STOP
    body = case.emulator.requests[-1].body
    assert isinstance(body, dict)
    # Sent without trailing whitespace, which Anthropic refuses in a prefill.
    sent = {"role": "assistant", "content": prefix.rstrip()}
    if case.api == "anthropic":
        assert body["messages"][-1] == sent
    else:
        assert body["messages"][-2:] == [sent, {"role": "user", "content": CONTINUE_INSTRUCTION}]


async def test_unary_continuation_joins_the_uninterrupted_answer(case: Case) -> None:
    question = Message(Role.USER, "Tell me a story.")
    full = (await case.provider.complete(request(case.model, question))).text
    prefix = _cut(full, "after_space")

    continued = await case.provider.complete(
        request(case.model, question, Message(Role.ASSISTANT, prefix))
    )

    assert prefix + continued.text == full


# --- errors before the answer ----------------------------------------------------------

STATUS_ERRORS: tuple[tuple[int, type[ProviderError]], ...] = (
    (400, InvalidProviderRequest),
    (401, AuthenticationFailed),
    (403, PermissionDenied),
    (404, UpstreamModelNotFound),
    (413, InvalidProviderRequest),
    (422, InvalidProviderRequest),
    (429, RateLimited),
    (500, ServerError),
    (503, ServerError),
    (529, Overloaded),
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("status", "error_class"), STATUS_ERRORS, ids=[str(s) for s, _ in STATUS_ERRORS]
)
async def test_error_status_maps_to_its_domain_error(
    case: Case, mode: Mode, status: int, error_class: type[ProviderError]
) -> None:
    case.emulator.set_behavior(case.model, Behavior(error_status=status))

    error = await fails(case.provider, case.request(), mode)

    assert type(error) is error_class
    assert error.status_code == status
    assert error.provider == case.provider.name
    assert error.model == case.model
    assert error.upstream_request_id == case.emulator.requests[-1].id
    assert API_KEY not in error.message


async def test_error_message_names_the_providers_error_type(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(error_status=429))

    error = await fails(case.provider, case.request(), "complete")

    expected = "rate_limit_error" if case.api == "anthropic" else "rate_limit_exceeded"
    assert expected in error.message
    assert "Please try again later." in error.message


@pytest.mark.parametrize("mode", MODES)
async def test_context_window_error_is_its_own_class(case: Case, mode: Mode) -> None:
    # The emulator's own window check, not a scripted error: a 64-token model.
    long_prompt = Message(Role.USER, "word " * 200)

    error = await fails(
        case.provider, request(case.tiny_model, long_prompt, max_output_tokens=16), mode
    )

    assert isinstance(error, ContextWindowExceeded)
    assert error.status_code == 400


async def test_exhausted_quota_is_a_rate_limit_not_worth_retrying(case: Case) -> None:
    if case.api == "anthropic":
        behavior = Behavior(error_status=402)
    else:
        behavior = Behavior(error_status=429, error_type="insufficient_quota")
    case.emulator.set_behavior(case.model, behavior)

    error = await fails(case.provider, case.request(), "complete")

    assert isinstance(error, RateLimited)
    assert error.quota_exhausted
    assert not facts_for(error).retryable


@pytest.mark.parametrize("status", [429, 503, 529])
async def test_retry_after_comes_from_the_response_headers(case: Case, status: int) -> None:
    case.emulator.set_behavior(case.model, Behavior(error_status=status, retry_after_s=2.5))

    error = await fails(case.provider, case.request(), "stream")

    assert error.retry_after_s == pytest.approx(2.5)
    assert facts_for(error).retryable


@pytest.mark.parametrize("mode", MODES)
async def test_no_reply_before_the_deadline_is_a_timeout(case: Case, mode: Mode) -> None:
    case.emulator.set_behavior(case.model, Behavior(latency_s=5.0))

    error = await fails(case.provider, case.request(timeout_s=0.2), mode)

    assert isinstance(error, ProviderTimeout)
    assert facts_for(error).retryable


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
@pytest.mark.parametrize("mode", MODES)
async def test_nothing_listening_is_a_connection_error(
    emulator: Emulator, kind: str, mode: Mode
) -> None:
    nowhere = f"http://127.0.0.1:{_unused_port()}"
    case = build_case(kind, emulator, anthropic_url=nowhere, openai_url=nowhere + "/v1")
    try:
        error = await fails(case.provider, case.request(), mode)
    finally:
        await case.provider.aclose()

    assert isinstance(error, ProviderConnectionError)
    assert "ConnectError" in error.message


# --- a stream that breaks after it started ---------------------------------------------

FAULTS: tuple[tuple[Behavior, InterruptionKind], ...] = (
    (Behavior(error_event_after_tokens=3), InterruptionKind.ERROR_EVENT),
    (Behavior(drop_after_tokens=3), InterruptionKind.DROPPED),
    (Behavior(truncate_after_tokens=3), InterruptionKind.TRUNCATED),
)


@pytest.mark.parametrize(("fault", "kind"), FAULTS, ids=[k.value for _, k in FAULTS])
async def test_mid_stream_fault_interrupts_with_its_kind(
    case: Case, fault: Behavior, kind: InterruptionKind
) -> None:
    case.emulator.set_behavior(case.model, fault)

    events, error = await collect_until_error(case.provider.stream(case.request()))

    assert isinstance(error, StreamInterrupted)
    assert error.kind is kind
    assert facts_for(error).retryable
    assert error.upstream_request_id == case.emulator.requests[-1].id
    assert len(events) == 3
    assert all(isinstance(e, TextChunk) for e in events)


async def test_error_event_names_the_providers_error(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(error_event_after_tokens=1))

    _, error = await collect_until_error(case.provider.stream(case.request()))

    assert isinstance(error, StreamInterrupted)
    expected = "overloaded_error" if case.api == "anthropic" else "server_error"
    assert expected in error.message


async def test_whole_text_without_the_terminal_event_is_still_truncated(case: Case) -> None:
    # The fault fires at the end of the text: every token arrives, the terminal event not.
    case.emulator.set_behavior(case.model, Behavior(truncate_after_tokens=1000))

    events, error = await collect_until_error(case.provider.stream(case.request()))

    assert isinstance(error, StreamInterrupted)
    assert error.kind is InterruptionKind.TRUNCATED
    assert len(events) == 24


async def test_stall_past_the_deadline_interrupts_as_stalled(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(stall_after_tokens=2, stall_s=30.0))

    events, error = await collect_until_error(case.provider.stream(case.request(timeout_s=0.3)))

    assert isinstance(error, StreamInterrupted)
    assert error.kind is InterruptionKind.STALLED
    assert len(events) == 2


# --- cancellation closes the upstream request --------------------------------------------


async def test_cancelling_the_consumer_closes_the_upstream_connection(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(stall_after_tokens=2, stall_s=3600.0))
    two_chunks = asyncio.Event()

    async def consume() -> None:
        received = 0
        async for _ in case.provider.stream(case.request()):
            received += 1
            if received == 2:
                two_chunks.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_chunks.wait(), timeout=30.0)
    ours = case.emulator.requests[-1].id
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The stall lasts an hour: only a closed connection is recorded within the wait.
    disconnect = await disconnect_of(case.emulator, ours)
    assert disconnect.tokens_sent == 2


async def test_cancelling_before_the_headers_closes_the_upstream_connection(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(latency_s=3600.0))
    task = asyncio.create_task(collect(case.provider.stream(case.request())))
    [arrived] = await case.emulator.wait_for_request()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The headers are an hour away: only a closed connection is recorded within the wait.
    disconnect = await disconnect_of(case.emulator, arrived.id)
    assert disconnect.tokens_sent == 0


async def test_closing_the_stream_closes_the_upstream_connection(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(tokens_per_second=20.0))
    stream = case.provider.stream(case.request())
    assert isinstance(await anext(stream), TextChunk)
    ours = case.emulator.requests[-1]

    await stream.aclose()

    # Left open, the answer would end normally ("ok") about a second later.
    disconnect = await disconnect_of(case.emulator, ours.id)
    assert disconnect.tokens_sent >= 1
    assert ours.outcome == "client_disconnected"


# --- one provider's own rules ----------------------------------------------------------


async def test_thinking_streams_before_the_answer(
    claude: AnthropicProvider, emulator: Emulator
) -> None:
    emulator.set_behavior(CLAUDE, Behavior(thinking_tokens=5))
    req = request(
        CLAUDE,
        Message(Role.USER, "Think first."),
        max_output_tokens=2048,
        thinking_budget_tokens=1024,
        temperature=0.3,
    )

    streamed = await collect(claude.stream(req))
    completion = await claude.complete(req)

    kinds = [type(e) for e in streamed.events]
    assert kinds == [ThinkingChunk] * 5 + [TextChunk] * 24 + [StreamEnd]
    assert streamed.thinking == completion.thinking != ""
    assert streamed.text == completion.text
    assert reported(streamed.end.usage).output_tokens == 5 + 24
    body = emulator.requests[-1].body
    assert isinstance(body, dict)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    # The API allows only the default temperature with thinking.
    assert "temperature" not in body


async def test_anthropic_request_as_sent(claude: AnthropicProvider, emulator: Emulator) -> None:
    req = request(
        CLAUDE,
        Message(Role.SYSTEM, "Be brief."),
        Message(Role.SYSTEM, "Be kind."),
        Message(Role.USER, "First part."),
        Message(Role.USER, "Second part."),
        max_output_tokens=100,
        temperature=0.4,
        stop=("END",),
    )

    await claude.complete(req)

    body = emulator.requests[-1].body
    assert body == {
        "model": CLAUDE,
        "max_tokens": 100,
        "system": "Be brief.\n\nBe kind.",
        "messages": [{"role": "user", "content": "First part.\n\nSecond part."}],
        "stop_sequences": ["END"],
        "temperature": 0.4,
    }


async def test_anthropic_continuation_runs_without_thinking(
    claude: AnthropicProvider, emulator: Emulator
) -> None:
    req = request(
        CLAUDE,
        Message(Role.USER, "Go on."),
        Message(Role.ASSISTANT, "Once upon"),
        max_output_tokens=2048,
        thinking_budget_tokens=1024,
    )

    await collect(claude.stream(req))

    body = emulator.requests[-1].body
    assert isinstance(body, dict)
    assert "thinking" not in body


async def test_anthropic_overloaded_error_type_is_overloaded(
    claude: AnthropicProvider, emulator: Emulator
) -> None:
    emulator.set_behavior(CLAUDE, Behavior(error_status=500, error_type="overloaded_error"))

    error = await fails(claude, request(CLAUDE, Message(Role.USER, "hi")), "complete")

    assert isinstance(error, Overloaded)


async def test_anthropic_count_tokens_maps_errors(
    claude: AnthropicProvider, emulator: Emulator
) -> None:
    with pytest.raises(UpstreamModelNotFound):
        await claude.count_tokens("claude-nonexistent", [Message(Role.USER, "hi")])


async def test_o3_mini_gets_reasoning_parameters_and_no_temperature(
    gpt: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.set_behavior(O3_MINI, Behavior(reasoning_tokens=7))
    req = request(
        O3_MINI,
        Message(Role.SYSTEM, "Be brief."),
        Message(Role.USER, "Prove it."),
        max_output_tokens=500,
        temperature=0.4,
        reasoning_effort=ReasoningEffort.HIGH,
    )

    streamed = await collect(gpt.stream(req))

    assert emulator.requests[-1].body == {
        "model": O3_MINI,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Prove it."},
        ],
        "max_completion_tokens": 500,
        "reasoning_effort": "high",
    }
    assert reported(streamed.end.usage).reasoning_tokens == 7
    assert reported(streamed.end.usage).output_tokens == 7 + 24


async def test_gpt_4o_mini_gets_temperature_and_the_system_role(
    gpt: OpenAIProvider, emulator: Emulator
) -> None:
    req = request(
        GPT_4O_MINI,
        Message(Role.SYSTEM, "Be brief."),
        Message(Role.USER, "Hello."),
        temperature=0.4,
        reasoning_effort=ReasoningEffort.HIGH,
    )

    await gpt.complete(req)

    assert emulator.requests[-1].body == {
        "model": GPT_4O_MINI,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello."},
        ],
        "max_completion_tokens": 256,
        "temperature": 0.4,
    }


async def test_compatible_server_gets_max_tokens(local: OpenAIProvider, emulator: Emulator) -> None:
    await local.complete(request(GPT_4O_MINI, Message(Role.USER, "Hello.")))

    body = emulator.requests[-1].body
    assert isinstance(body, dict)
    assert body["max_tokens"] == 256
    assert "max_completion_tokens" not in body
