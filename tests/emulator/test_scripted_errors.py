"""Scripted HTTP errors: each raises the SDK's own exception class with the provider's body."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import anthropic
import openai
import pytest
from modelrouter_server.emulator import Behavior, Emulator

from .support import CLAUDE, GPT_4O_MINI, api_message, claude_user, gpt_user

CLAUDE_HELLO = [claude_user("Hello, world")]
GPT_HELLO = [gpt_user("Hello, world")]


@pytest.mark.parametrize(
    ("status", "exception", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_anthropic_error_status_raises_the_sdk_class(
    claude: anthropic.AsyncAnthropic,
    emulator: Emulator,
    status: int,
    exception: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    emulator.enqueue(CLAUDE, Behavior(error_status=status))

    with pytest.raises(exception) as caught:
        await claude.messages.create(model=CLAUDE, max_tokens=10, messages=CLAUDE_HELLO)

    assert caught.value.status_code == status
    assert caught.value.type == error_type
    assert caught.value.request_id == emulator.requests[0].id
    assert caught.value.body == {
        "type": "error",
        "error": {"type": error_type, "message": caught.value.api_message},
        "request_id": emulator.requests[0].id,
    }
    assert emulator.requests[0].outcome == f"error:{status}"
    # The one-shot behavior is used up: the next request succeeds.
    await claude.messages.create(model=CLAUDE, max_tokens=10, messages=CLAUDE_HELLO)


@pytest.mark.parametrize(
    ("status", "exception", "error_type", "code"),
    [
        (400, openai.BadRequestError, "invalid_request_error", None),
        (401, openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
        (403, openai.PermissionDeniedError, "invalid_request_error", None),
        (404, openai.NotFoundError, "invalid_request_error", "model_not_found"),
        (413, openai.APIStatusError, "invalid_request_error", None),
        (429, openai.RateLimitError, "requests", "rate_limit_exceeded"),
        (500, openai.InternalServerError, "server_error", None),
        (503, openai.InternalServerError, "server_error", None),
    ],
)
async def test_openai_error_status_raises_the_sdk_class(
    gpt: openai.AsyncOpenAI,
    emulator: Emulator,
    status: int,
    exception: type[openai.APIStatusError],
    error_type: str,
    code: str | None,
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(error_status=status))

    with pytest.raises(exception) as caught:
        await gpt.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO)

    assert type(caught.value) is exception
    assert caught.value.status_code == status
    assert (caught.value.type, caught.value.code, caught.value.param) == (error_type, code, None)
    assert caught.value.request_id == emulator.requests[0].id
    assert api_message(caught.value)


async def test_openai_insufficient_quota_is_its_own_type_and_code(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(error_status=429, error_type="insufficient_quota"))

    with pytest.raises(openai.RateLimitError) as caught:
        await gpt.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO)

    assert (caught.value.type, caught.value.code) == ("insufficient_quota", "insufficient_quota")
    assert "quota" in api_message(caught.value)


async def test_error_type_override_reaches_the_anthropic_body(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.enqueue(CLAUDE, Behavior(error_status=500, error_type="overloaded_error"))

    with pytest.raises(anthropic.InternalServerError) as caught:
        await claude.messages.create(model=CLAUDE, max_tokens=10, messages=CLAUDE_HELLO)

    assert caught.value.type == "overloaded_error"
    assert caught.value.api_message == "Overloaded"


async def test_anthropic_retry_after_sets_retry_and_reset_headers(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.enqueue(CLAUDE, Behavior(error_status=429, retry_after_s=1.2))
    before = datetime.now(UTC).replace(microsecond=0)

    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude.messages.create(model=CLAUDE, max_tokens=10, messages=CLAUDE_HELLO)

    headers = caught.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1200"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])
    assert 1 <= (reset - before).total_seconds() <= 3


async def test_openai_retry_after_sets_retry_and_reset_headers(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(error_status=429, retry_after_s=360))

    with pytest.raises(openai.RateLimitError) as caught:
        await gpt.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO)

    headers = caught.value.response.headers
    assert headers["retry-after"] == "360"
    assert headers["retry-after-ms"] == "360000"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "6m0s"


async def _outcomes(seed: int, count: int) -> list[str | None]:
    async with Emulator(seed=seed) as emu:
        emu.set_behavior("*", Behavior(error_status=503, error_rate=0.5))
        client = openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)
        for _ in range(count):
            with contextlib.suppress(openai.InternalServerError):
                await client.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO)
        await client.close()
        return [record.outcome for record in await emu.wait_for_finished(count)]


async def test_error_rate_fails_a_seeded_share_of_requests() -> None:
    first = await _outcomes(seed=7, count=40)
    again = await _outcomes(seed=7, count=40)
    other = await _outcomes(seed=8, count=40)

    assert first == again
    assert first != other
    failures = first.count("error:503")
    assert set(first) == {"ok", "error:503"}
    # Binomial(40, 0.5): outside [8, 32] has a probability below 1e-4.
    assert 8 <= failures <= 32


async def test_enqueued_behaviors_are_used_in_order_then_the_default(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT_4O_MINI, Behavior(output_tokens=3))
    emulator.enqueue(GPT_4O_MINI, Behavior(error_status=500), Behavior(error_status=429))
    outcomes = []
    for _ in range(3):
        try:
            completion = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO)
            outcomes.append(completion.usage.completion_tokens if completion.usage else None)
        except openai.APIStatusError as error:
            outcomes.append(error.status_code)

    assert outcomes == [500, 429, 3]
