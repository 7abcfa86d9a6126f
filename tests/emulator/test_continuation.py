"""The continuation rule: an answer resumed from its own prefix, on any model, joins with no
gap and no repetition."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from modelrouter_server.emulator import Behavior, Emulator
from openai.types.chat import ChatCompletionMessageParam

from .support import (
    CLAUDE,
    GPT_4O_MINI,
    O3_MINI,
    claude_assistant,
    claude_user,
    gpt_assistant,
    gpt_user,
)

QUESTION = "Tell me about lorem ipsum."
CLAUDE_CONVERSATION = [claude_user(QUESTION)]
GPT_CONVERSATION = [gpt_user(QUESTION)]
CONTINUE = gpt_user("Continue exactly where you stopped.")


async def _claude_text(client: anthropic.AsyncAnthropic, messages: list[MessageParam]) -> str:
    message = await client.messages.create(model=CLAUDE, max_tokens=1000, messages=messages)
    assert message.content[0].type == "text"
    return message.content[0].text


async def _gpt_text(
    client: openai.AsyncOpenAI,
    messages: list[ChatCompletionMessageParam],
    model: str = GPT_4O_MINI,
) -> str:
    completion = await client.chat.completions.create(model=model, messages=messages)
    return completion.choices[0].message.content or ""


async def test_anthropic_prefill_gets_only_the_rest(claude: anthropic.AsyncAnthropic) -> None:
    full = await _claude_text(claude, CLAUDE_CONVERSATION)
    words = full.split(" ")[1:]
    prefix = " " + " ".join(words[:10])

    rest = await _claude_text(claude, [*CLAUDE_CONVERSATION, claude_assistant(prefix)])

    assert prefix + rest == full
    assert len(rest.split()) == 14


async def test_openai_continue_after_assistant_and_user_gets_only_the_rest(
    gpt: openai.AsyncOpenAI,
) -> None:
    full = await _gpt_text(gpt, GPT_CONVERSATION)
    prefix = full[: len(full) // 2].rstrip()

    rest = await _gpt_text(gpt, [*GPT_CONVERSATION, gpt_assistant(prefix), CONTINUE])

    assert prefix + rest == full


async def test_a_prefix_cut_inside_a_word_continues_inside_it(
    claude: anthropic.AsyncAnthropic,
) -> None:
    full = await _claude_text(claude, CLAUDE_CONVERSATION)
    cut = full.index(" ", 5) + 3
    prefix = full[:cut]
    assert not prefix.endswith(" ")

    rest = await _claude_text(claude, [*CLAUDE_CONVERSATION, claude_assistant(prefix)])

    assert prefix + rest == full


async def test_a_prefix_sent_without_its_leading_space_still_continues(
    claude: anthropic.AsyncAnthropic,
) -> None:
    full = await _claude_text(claude, CLAUDE_CONVERSATION)
    prefix = full[:30].strip()

    rest = await _claude_text(claude, [*CLAUDE_CONVERSATION, claude_assistant(prefix)])

    assert full.lstrip() == prefix + rest


async def test_an_answer_dropped_on_claude_resumes_on_openai_seamlessly(
    claude: anthropic.AsyncAnthropic, gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    full = await _gpt_text(gpt, GPT_CONVERSATION, model=O3_MINI)
    emulator.enqueue(CLAUDE, Behavior(drop_after_tokens=7))
    received: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        stream = await claude.messages.create(
            model=CLAUDE, max_tokens=1000, messages=CLAUDE_CONVERSATION, stream=True
        )
        async with stream:
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    received.append(event.delta.text)
    partial = "".join(received)

    rest = await _gpt_text(gpt, [*GPT_CONVERSATION, gpt_assistant(partial), CONTINUE])

    assert len(received) == 7
    assert partial + rest == full


async def test_fixed_text_continues_from_its_prefix(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.set_behavior("*", Behavior(text="The quick brown fox jumps over the lazy dog."))

    rest = await _gpt_text(gpt, [*GPT_CONVERSATION, gpt_assistant("The quick brown"), CONTINUE])

    assert rest == " fox jumps over the lazy dog."


async def test_an_assistant_turn_that_is_not_a_prefix_gets_a_fresh_answer(
    claude: anthropic.AsyncAnthropic,
) -> None:
    history = [
        *CLAUDE_CONVERSATION,
        claude_assistant("Something else entirely."),
        claude_user("And then?"),
    ]
    answer = await _claude_text(claude, history)
    first = await _claude_text(claude, CLAUDE_CONVERSATION)

    assert len(answer.split()) == 24
    assert answer != first


async def test_a_complete_earlier_answer_is_not_a_continuation(
    claude: anthropic.AsyncAnthropic,
) -> None:
    first = await _claude_text(claude, CLAUDE_CONVERSATION)
    history = [*CLAUDE_CONVERSATION, claude_assistant(first.strip()), claude_user("More?")]

    answer = await _claude_text(claude, history)

    assert len(answer.split()) == 24
