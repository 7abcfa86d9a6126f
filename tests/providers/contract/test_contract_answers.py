"""The provider contract for what an answer says about itself, over every provider:
refusals, each documented stop reason, usage left out, and the model that answered.

Like `test_contract.py`, each test runs once per provider kind against the emulator
through the official SDKs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest
from modelrouter_server.domain import (
    Completion,
    FinishReason,
    Refusal,
    RefusalChunk,
    TextChunk,
    Usage,
)
from modelrouter_server.emulator import Behavior
from modelrouter_server.providers.finish_reasons import (
    ANTHROPIC_STOP_REASONS,
    OPENAI_FINISH_REASONS,
)

from ..support import Case, collect

pytestmark = pytest.mark.asyncio(loop_scope="module")

REFUSAL = "I'm sorry, I can't assist with that request."


Mode = Literal["complete", "stream"]
MODES = pytest.mark.parametrize("mode", ["complete", "stream"])


@dataclass(frozen=True)
class Answer:
    text: str
    refusal_chunks: str
    finish_reason: FinishReason
    usage: Usage | None
    refusal: Refusal | None
    provider_model: str


async def answer(case: Case, mode: Mode) -> Answer:
    if mode == "complete":
        c: Completion = await case.provider.complete(case.request())
        return Answer(c.text, "", c.finish_reason, c.usage, c.refusal, c.provider_model)
    streamed = await collect(case.provider.stream(case.request()))
    end = streamed.end
    refusal_chunks = "".join(e.text for e in streamed.events if isinstance(e, RefusalChunk))
    text = "".join(e.text for e in streamed.events if isinstance(e, TextChunk))
    return Answer(
        text, refusal_chunks, end.finish_reason, end.usage, end.refusal, end.provider_model
    )


@MODES
async def test_a_refusal_is_reported_with_its_text(case: Case, mode: Mode) -> None:
    case.emulator.set_behavior(case.model, Behavior(refusal=REFUSAL))
    got = await answer(case, mode)
    assert got.finish_reason is FinishReason.REFUSAL
    assert got.refusal is not None and got.refusal.text == REFUSAL
    if case.api == "openai":
        # Refusal text arrives apart from the content, which stays empty.
        assert got.text == ""
        assert got.refusal_chunks == (REFUSAL if mode == "stream" else "")
    else:
        assert got.text == REFUSAL and got.refusal_chunks == ""


@MODES
async def test_an_answer_that_is_not_a_refusal_has_none(case: Case, mode: Mode) -> None:
    got = await answer(case, mode)
    assert got.finish_reason is FinishReason.STOP
    assert got.refusal is None and got.refusal_chunks == ""


@MODES
async def test_every_stop_reason_of_the_api_maps_through_its_table(case: Case, mode: Mode) -> None:
    table = ANTHROPIC_STOP_REASONS if case.api == "anthropic" else OPENAI_FINISH_REASONS
    for wire, expected in table.items():
        case.emulator.set_behavior(case.model, Behavior(stop_reason=wire, output_tokens=3))
        got = await answer(case, mode)
        assert got.finish_reason is expected, wire


@MODES
async def test_an_unknown_stop_reason_is_unknown_not_a_guess(case: Case, mode: Mode) -> None:
    case.emulator.set_behavior(case.model, Behavior(stop_reason="brand_new_reason"))
    got = await answer(case, mode)
    assert got.finish_reason is FinishReason.UNKNOWN
    assert got.text


@MODES
async def test_usage_left_out_is_none_not_zero(case: Case, mode: Mode) -> None:
    case.emulator.set_behavior(case.model, Behavior(omit_usage=True))
    got = await answer(case, mode)
    assert got.usage is None
    assert got.text and got.finish_reason is FinishReason.STOP


@MODES
async def test_the_model_the_provider_names_is_reported(case: Case, mode: Mode) -> None:
    assert (await answer(case, mode)).provider_model == case.model
    case.emulator.set_behavior(case.model, Behavior(response_model="snapshot-2099-01-01"))
    assert (await answer(case, mode)).provider_model == "snapshot-2099-01-01"
