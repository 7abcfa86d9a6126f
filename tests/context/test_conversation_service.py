"""The request path's view of conversations: history in, turn out."""

from __future__ import annotations

import pytest
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context import (
    ConversationService,
    MemoryStore,
    SummaryRecord,
    TokenCounter,
)
from modelrouter_server.domain import Message, Role
from modelrouter_server.errors import ConversationNotFound

from .conftest import SMALL_CLAUDE, SMALL_GPT

OPENING = (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Hi, I'm Ada.", pinned=True))


@pytest.fixture
def counter(config: RouterConfig) -> TokenCounter:
    return TokenCounter(config, {})


@pytest.fixture
def service(config: RouterConfig, counter: TokenCounter) -> ConversationService:
    return ConversationService(MemoryStore(), counter, config)


async def test_created_messages_are_counted_for_the_default_model(
    service: ConversationService, counter: TokenCounter
) -> None:
    created = await service.create(OPENING, {"user": "ada"})
    assert [m.tokens for m in created.messages] == list(counter.message_tokens(SMALL_GPT, OPENING))


async def test_a_turn_is_the_history_then_the_new_messages(service: ConversationService) -> None:
    created = await service.create(OPENING, {})
    question = Message(Role.USER, "What's my name?")
    turn = await service.open_turn(created.id, [question])
    assert turn.messages == (*OPENING, question)
    assert turn.seqs == (0, 1)
    assert await service.prompt_messages(created.id, [question]) == turn.messages


async def test_recording_a_turn_appends_the_messages_and_the_reply(
    service: ConversationService, counter: TokenCounter
) -> None:
    created = await service.create(OPENING, {})
    question = Message(Role.USER, "What's my name?")
    turn = await service.open_turn(created.id, [question])
    result = await service.record_turn(turn, "Ada.", model_id=SMALL_CLAUDE)
    answer = Message(Role.ASSISTANT, "Ada.")
    assert [m.message for m in result.messages] == [question, answer]
    assert [m.seq for m in result.messages] == [2, 3]
    assert [m.tokens for m in result.messages] == list(
        counter.message_tokens(SMALL_CLAUDE, [question, answer])
    )
    assert result.summary is None


async def test_the_history_shows_summaries_in_place(service: ConversationService) -> None:
    created = await service.create(OPENING, {})
    for i in range(3):
        turn = await service.open_turn(created.id, [Message(Role.USER, f"q{i}")])
        await service.record_turn(turn, f"a{i}", model_id=SMALL_GPT)
    summary = SummaryRecord(Message(Role.USER, "q0 and q1 were asked."), (2, 3, 4, 5))
    await service.store.append(created.id, [], summary=summary)

    turn = await service.open_turn(created.id, [Message(Role.USER, "next")])
    assert [m.content for m in turn.messages] == [
        "Be brief.",
        "Hi, I'm Ada.",
        "q0 and q1 were asked.",
        "q2",
        "a2",
        "next",
    ]
    assert turn.seqs == (0, 1, 8, 6, 7)


async def test_conversation_operations_pass_through(service: ConversationService) -> None:
    created = await service.create(OPENING, {})
    assert (await service.get(created.id)).id == created.id
    assert [c.id for c in (await service.list()).conversations] == [created.id]
    await service.delete(created.id)
    with pytest.raises(ConversationNotFound):
        await service.open_turn(created.id, [])
