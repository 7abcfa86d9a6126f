"""The OpenAI Chat Completions API as the official SDK sees it: answers, streams, o-series
rules, validation."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.emulator.counting import openai_prompt_tokens
from openai.types.chat import ChatCompletionMessageParam

from .support import GPT_4O_MINI, O3_MINI, OPENAI_HEADERS, api_message, gpt_user, parse_sse

HELLO = [gpt_user("Hello, world")]


async def test_unary_answer_is_a_real_chat_completion(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    completion = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == GPT_4O_MINI
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content is not None
    assert len(choice.message.content.split()) == 24
    usage = completion.usage
    assert usage is not None
    # Cookbook: 3 per message + "user" (1) + "Hello, world" (3) + 3 priming.
    assert usage.prompt_tokens == 10
    assert usage.completion_tokens == 24
    assert usage.total_tokens == 34
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    [record] = await emulator.wait_for_finished()
    assert (record.api, record.auth, record.outcome) == ("openai", "bearer", "ok")


async def test_response_headers_carry_request_id_and_rate_limits(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    raw = await gpt.chat.completions.with_raw_response.create(model=GPT_4O_MINI, messages=HELLO)

    assert raw.headers["x-request-id"] == emulator.requests[0].id
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    assert raw.headers["x-ratelimit-reset-requests"] == "6ms"
    assert raw.headers["x-ratelimit-remaining-tokens"] == raw.headers["x-ratelimit-limit-tokens"]


async def test_stream_with_usage_sends_role_tokens_finish_usage(gpt: openai.AsyncOpenAI) -> None:
    stream = await gpt.chat.completions.create(
        model=GPT_4O_MINI,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    first, *tokens, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert len(tokens) == 24
    assert all(c.choices[0].delta.content for c in tokens)
    assert all(c.choices[0].finish_reason is None for c in [first, *tokens])
    assert finish.choices[0].finish_reason == "stop"
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.completion_tokens == 24
    assert all(c.usage is None for c in [first, *tokens, finish])
    assert len({c.id for c in chunks}) == 1


async def test_raw_stream_ends_with_done(emulator: Emulator, http: httpx2.AsyncClient) -> None:
    body = {"model": GPT_4O_MINI, "messages": HELLO, "stream": True}
    response = await http.post(
        f"{emulator.openai_base_url}/chat/completions", json=body, headers=OPENAI_HEADERS
    )

    events = parse_sse(response.text)
    assert all(event.event is None for event in events)
    assert events[-1].data == "[DONE]"
    assert events[-2].json()["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert "usage" not in events[-2].json()


async def test_stream_text_equals_unary_text(gpt: openai.AsyncOpenAI) -> None:
    unary = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)
    stream = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert text == unary.choices[0].message.content


async def test_max_completion_tokens_cuts_with_finish_reason_length(
    gpt: openai.AsyncOpenAI,
) -> None:
    completion = await gpt.chat.completions.create(
        model=GPT_4O_MINI, messages=HELLO, max_completion_tokens=5
    )

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5


async def test_stop_ends_the_answer_before_it(gpt: openai.AsyncOpenAI, emulator: Emulator) -> None:
    emulator.set_behavior(GPT_4O_MINI, Behavior(text="One two three four"))
    completion = await gpt.chat.completions.create(
        model=GPT_4O_MINI, messages=HELLO, stop=[" three"]
    )

    assert completion.choices[0].message.content == "One two"
    assert completion.choices[0].finish_reason == "stop"


async def test_reasoning_model_reports_reasoning_tokens_inside_completion_tokens(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.set_behavior(O3_MINI, Behavior(reasoning_tokens=100, output_tokens=10))
    completion = await gpt.chat.completions.create(
        model=O3_MINI,
        messages=[{"role": "developer", "content": "Be brief."}, *HELLO],
        max_completion_tokens=105,
        reasoning_effort="low",
    )

    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 100
    # Reasoning spends the budget first: 5 of the 10 answer tokens fit.
    assert usage.completion_tokens == 105
    assert completion.choices[0].finish_reason == "length"
    assert len((completion.choices[0].message.content or "").split()) == 5


@pytest.mark.parametrize(
    ("param", "value", "hint"),
    [
        ("max_tokens", 100, "Use 'max_completion_tokens' instead."),
        ("temperature", 0.2, ""),
        ("top_p", 0.9, ""),
    ],
)
async def test_o_series_rejects_classic_sampling_parameters(
    gpt: openai.AsyncOpenAI, param: str, value: float, hint: str
) -> None:
    sampling: dict[str, Any] = {param: value}
    with pytest.raises(openai.BadRequestError) as caught:
        await gpt.chat.completions.create(model=O3_MINI, messages=HELLO, **sampling)

    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == param
    expected = f"Unsupported parameter: '{param}' is not supported with this model."
    assert api_message(caught.value) == f"{expected} {hint}".rstrip()


async def test_reasoning_effort_on_a_classic_model_is_rejected(gpt: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await gpt.chat.completions.create(
            model=GPT_4O_MINI, messages=HELLO, reasoning_effort="high"
        )

    assert (caught.value.code, caught.value.param) == ("unsupported_parameter", "reasoning_effort")


async def test_developer_and_system_roles_are_accepted(gpt: openai.AsyncOpenAI) -> None:
    instructions: list[ChatCompletionMessageParam] = [
        {"role": "developer", "content": "Be brief."},
        {"role": "system", "content": "Be brief."},
    ]
    for model in (O3_MINI, GPT_4O_MINI):
        for instruction in instructions:
            completion = await gpt.chat.completions.create(
                model=model, messages=[instruction, *HELLO]
            )
            assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("model", "param", "value"),
    [
        (GPT_4O_MINI, "max_tokens", 16_385),
        (GPT_4O_MINI, "max_completion_tokens", 16_385),
        (O3_MINI, "max_completion_tokens", 100_001),
    ],
)
async def test_output_limit_above_the_model_cap_names_the_param(
    gpt: openai.AsyncOpenAI, model: str, param: str, value: int
) -> None:
    limit: dict[str, Any] = {param: value}
    with pytest.raises(openai.BadRequestError) as caught:
        await gpt.chat.completions.create(model=model, messages=HELLO, **limit)

    assert caught.value.param == param
    assert api_message(caught.value).startswith(f"{param} is too large: {value}.")


async def test_unknown_model_is_model_not_found(gpt: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await gpt.chat.completions.create(model="gpt-nope", messages=HELLO)

    assert caught.value.code == "model_not_found"
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"messages": []}, "empty_array"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "invalid_value"),
        ({"messages": [{"role": "user"}]}, "missing_required_parameter"),
        ({"max_completion_tokens": 0}, "integer_below_min_value"),
    ],
)
async def test_invalid_request_is_400_with_the_real_code(
    gpt: openai.AsyncOpenAI, changes: dict[str, Any], code: str
) -> None:
    request: dict[str, Any] = {"model": GPT_4O_MINI, "messages": HELLO, **changes}
    with pytest.raises(openai.BadRequestError) as caught:
        await gpt.chat.completions.create(**request)

    assert caught.value.code == code
    assert caught.value.type == "invalid_request_error"


async def test_prompt_and_output_over_the_window_is_context_length_exceeded(
    gpt: openai.AsyncOpenAI,
) -> None:
    # " hello" is one o200k token: this prompt leaves room for fewer than 16,384 tokens.
    messages = [gpt_user(" hello" * 112_000)]
    prompt_tokens = openai_prompt_tokens(messages)
    assert 128_000 - 16_384 < prompt_tokens < 128_000

    with pytest.raises(openai.BadRequestError) as caught:
        await gpt.chat.completions.create(
            model=GPT_4O_MINI, messages=messages, max_completion_tokens=16_384
        )
    assert caught.value.code == "context_length_exceeded"
    assert f"({prompt_tokens} in the messages, 16384 in the completion)" in api_message(
        caught.value
    )

    # Without an explicit limit the answer just gets the room that is left.
    completion = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=messages)
    assert completion.usage is not None and completion.usage.prompt_tokens == prompt_tokens


async def test_missing_key_is_401(emulator: Emulator, http: httpx2.AsyncClient) -> None:
    body = {"model": GPT_4O_MINI, "messages": HELLO}
    response = await http.post(f"{emulator.openai_base_url}/chat/completions", json=body)

    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"
