"""Fitting prompts into windows: summarize past the threshold, prune by importance, and
never remove the system prompt, pinned messages or the latest user turn."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence

import pytest
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context import (
    ContextManager,
    ConversationService,
    FittedPrompt,
    MemoryStore,
    ModelSummarizer,
    TokenCounter,
    protected_indexes,
)
from modelrouter_server.context.window import OMITTED_NOTE
from modelrouter_server.domain import Importance, Message, Role
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.errors import RequestError
from modelrouter_server.providers.base import Provider
from modelrouter_server.resilience import BreakerRegistry, FallbackChain

from .conftest import GPT, SMALL_CLAUDE, SMALL_GPT, SMALL_WINDOW

OUTPUT = 500
BUDGET = SMALL_WINDOW - OUTPUT - 100  # window - max_output_tokens - safety margin
SYSTEM = Message(Role.SYSTEM, "You are the project assistant. Keep answers short.")


def words(tag: str, n: int) -> str:
    """About `n` o200k tokens of text, distinct per tag."""
    return f"{tag}:" + " fact" * n


def dialogue(turns: int, size: int = 60) -> list[Message]:
    out: list[Message] = []
    for i in range(turns):
        out.append(Message(Role.USER, words(f"question {i}", size)))
        out.append(Message(Role.ASSISTANT, words(f"answer {i}", size)))
    return out


def summarizer_calls(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.model == GPT and "chat" in r.path)


def assert_alternates(messages: Sequence[Message]) -> None:
    roles = [m.role for m in messages if m.role is not Role.SYSTEM]
    assert roles, "no dialogue left"
    assert roles[0] is Role.USER
    for previous, current in itertools.pairwise(roles):
        assert previous is not current, f"two {current.value} messages in a row"


def contents(fitted: FittedPrompt) -> str:
    return "\n".join(m.content for m in fitted.messages)


@pytest.fixture
def counter(config: RouterConfig) -> TokenCounter:
    return TokenCounter(config, {})


@pytest.fixture
def pruner(config: RouterConfig, counter: TokenCounter) -> ContextManager:
    """A context manager without a summarizer: it can only prune."""
    return ContextManager(config, counter)


@pytest.fixture
def manager(
    config: RouterConfig, providers: dict[str, Provider], counter: TokenCounter
) -> ContextManager:
    """A context manager summarizing with gpt-4o-mini through the fallback chain and the
    real provider."""
    chain = FallbackChain(providers, BreakerRegistry(), config.resilience, counter=counter)
    summarizer = ModelSummarizer(config, chain.complete_request)
    return ContextManager(config, counter, summarizer=summarizer)


async def test_a_prompt_under_the_threshold_is_sent_unchanged(
    pruner: ContextManager, counter: TokenCounter
) -> None:
    messages = [SYSTEM, *dialogue(3)]
    fitted = await pruner.fit(SMALL_GPT, messages, OUTPUT)
    assert fitted.messages == tuple(messages)
    tokens = counter.count_local(SMALL_GPT, messages)
    assert fitted.report.history_tokens == fitted.report.sent_tokens == tokens
    assert fitted.report.budget_tokens == BUDGET
    assert fitted.report.summarized_messages == fitted.report.pruned_messages == 0
    assert fitted.replaced is None
    assert fitted.pruned == ()


async def test_history_past_the_threshold_is_summarized_by_the_summarizer_model(
    manager: ContextManager, counter: TokenCounter, emulator: Emulator
) -> None:
    pinned = Message(Role.USER, "Pinned: the launch date is 12 May.", pinned=True)
    messages = [SYSTEM, pinned, Message(Role.ASSISTANT, "Noted."), *dialogue(20)]
    messages.append(Message(Role.USER, "What is the launch date?"))
    history = counter.count_local(SMALL_GPT, messages)
    assert history > 0.8 * BUDGET

    fitted = await manager.fit(SMALL_GPT, messages, OUTPUT)

    assert summarizer_calls(emulator) == 1
    request = [r for r in emulator.requests if r.model == GPT][-1]
    assert "question 0" in str(request.body)  # the oldest history went to the summarizer
    replaced = fitted.replaced
    assert replaced is not None
    assert replaced.summarizer_model == GPT
    assert replaced.usage.input_tokens > 0
    assert replaced.message.role is Role.USER
    assert replaced.message in fitted.messages
    assert replaced.indexes[0] == 3  # the oldest removable user turn
    assert 1 not in replaced.indexes  # pinned
    assert replaced.seqs == ()  # no conversation, nothing to store
    assert fitted.summary_record is None

    report = fitted.report
    assert report.history_tokens == history
    assert report.sent_tokens == counter.count_local(SMALL_GPT, fitted.messages)
    assert report.sent_tokens <= BUDGET
    assert report.summarized_messages == len(replaced.indexes)
    assert report.pruned_messages == len(fitted.pruned) == 0
    assert fitted.messages[0] == SYSTEM
    assert pinned.content in contents(fitted)
    assert fitted.messages[-1].content == "What is the launch date?"
    assert_alternates(fitted.messages)


async def test_refitting_reuses_the_summary(manager: ContextManager, emulator: Emulator) -> None:
    messages = [SYSTEM, *dialogue(20), Message(Role.USER, "Go on.")]
    first = await manager.fit(SMALL_GPT, messages, OUTPUT)
    again = await manager.fit(SMALL_GPT, messages, OUTPUT)
    assert summarizer_calls(emulator) == 1
    assert again.messages == first.messages
    assert again.replaced is not None
    assert again.replaced.usage.input_tokens == 0  # from the cache: nothing billed


async def test_concurrent_fits_share_one_summarizer_call(
    manager: ContextManager, emulator: Emulator
) -> None:
    messages = [SYSTEM, *dialogue(20), Message(Role.USER, "Go on.")]
    first, second = await asyncio.gather(
        manager.fit(SMALL_GPT, messages, OUTPUT), manager.fit(SMALL_GPT, messages, OUTPUT)
    )
    assert summarizer_calls(emulator) == 1
    assert first.messages == second.messages


async def test_each_candidate_gets_its_own_fit(
    manager: ContextManager, counter: TokenCounter
) -> None:
    messages = [SYSTEM, *dialogue(20), Message(Role.USER, "Go on.")]
    roomy = await manager.fit(GPT, messages, OUTPUT)
    assert roomy.messages == tuple(messages)  # 128K window: nothing to do
    small = await manager.fit(SMALL_CLAUDE, messages, OUTPUT)
    assert small.report.sent_tokens <= BUDGET
    assert small.report.sent_tokens == counter.count_local(SMALL_CLAUDE, small.messages)
    assert small.replaced is not None or small.pruned


async def test_protected_messages_survive_heavy_pruning(pruner: ContextManager) -> None:
    pinned_fact = Message(Role.USER, "Pinned: the budget is 40k.", pinned=True)
    pinned_answer = Message(Role.ASSISTANT, "Pinned: agreed, 40k.", pinned=True)
    messages = [
        SYSTEM,
        *dialogue(10, size=150),
        pinned_fact,
        pinned_answer,
        *dialogue(10, size=150),
        Message(Role.USER, words("latest question", 80)),
        Message(Role.ASSISTANT, "Partial answer that the model should contin"),
    ]
    fitted = await pruner.fit(SMALL_GPT, messages, OUTPUT)

    assert fitted.report.pruned_messages > 0
    assert fitted.report.sent_tokens <= BUDGET
    kept = contents(fitted)
    for i in protected_indexes(messages):
        assert messages[i].content in kept
    assert fitted.messages[0] == SYSTEM
    assert fitted.messages[-1] == messages[-1]  # the prefill stays last
    assert not set(fitted.pruned) & protected_indexes(messages)
    assert_alternates(fitted.messages)


async def test_pruning_goes_by_importance_then_age(pruner: ContextManager) -> None:
    levels = [Importance.NORMAL, Importance.LOW, Importance.HIGH]
    messages = [SYSTEM]
    for i in range(36):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        importance = levels[(i // 2) % 3]
        messages.append(Message(role, words(f"m{i}", 150), importance=importance))
    messages.append(Message(Role.USER, "Summing up?"))

    fitted = await pruner.fit(SMALL_GPT, messages, OUTPUT)

    # LOW: 3, 4, 9, 10, ... 33, 34; NORMAL: 1, 2, 7, 8, ...; HIGH: 5, 6, 11, 12, ...
    # Every LOW message goes first, then the oldest NORMAL ones (1, 2, 7), no HIGH one.
    assert fitted.pruned == (1, 2, 3, 4, 7, 9, 10, 15, 16, 21, 22, 27, 28, 33, 34)
    assert fitted.report.pruned_messages == 15
    assert fitted.report.sent_tokens <= BUDGET
    assert_alternates(fitted.messages)


@pytest.mark.parametrize("seed", range(20))
async def test_alternation_stays_valid_whatever_is_pruned(
    pruner: ContextManager, seed: int
) -> None:
    rng = random.Random(seed)
    messages = [SYSTEM]
    for i in range(30):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        messages.append(
            Message(
                role,
                words(f"s{seed}m{i}", rng.randint(10, 200)),
                pinned=rng.random() < 0.1,
                importance=rng.choice(list(Importance)),
            )
        )
    messages.append(Message(Role.USER, "And now?"))
    fitted = await pruner.fit(SMALL_GPT, messages, OUTPUT)
    assert fitted.report.sent_tokens <= BUDGET
    assert_alternates(fitted.messages)
    assert fitted.messages[-1].content == "And now?"


async def test_a_dialogue_never_opens_with_the_assistant(pruner: ContextManager) -> None:
    messages = [
        SYSTEM,
        Message(Role.USER, words("old question", 3_500), importance=Importance.LOW),
        Message(Role.ASSISTANT, "Key decision: ship on Friday.", importance=Importance.HIGH),
        Message(Role.USER, "Anything else?"),
    ]
    fitted = await pruner.fit(SMALL_GPT, messages, OUTPUT)
    assert fitted.pruned == (1,)
    assert [m.role for m in fitted.messages] == [
        Role.SYSTEM,
        Role.USER,
        Role.ASSISTANT,
        Role.USER,
    ]
    assert fitted.messages[1].content == OMITTED_NOTE
    assert fitted.report.sent_tokens <= BUDGET


async def test_a_message_too_large_is_named(pruner: ContextManager) -> None:
    messages = [
        SYSTEM,
        *dialogue(2),
        Message(Role.USER, words("huge pinned", 5_000), pinned=True),
        *dialogue(1),
        Message(Role.USER, "Thoughts?"),
    ]
    with pytest.raises(RequestError) as caught:
        await pruner.fit(SMALL_GPT, messages, OUTPUT)
    assert caught.value.field == "messages[5]"
    assert "too large" in caught.value.message
    assert str(BUDGET) in caught.value.message


async def test_a_stored_message_too_large_is_named_by_seq(pruner: ContextManager) -> None:
    history = [SYSTEM, Message(Role.USER, words("huge", 5_000), pinned=True)]
    messages = [*history, Message(Role.ASSISTANT, "ok"), Message(Role.USER, "Next?")]
    with pytest.raises(RequestError) as caught:
        await pruner.fit(SMALL_GPT, messages, OUTPUT, seqs=[10, 11, 12])
    assert caught.value.field == "conversation_id"
    assert "seq 11" in caught.value.message


async def test_a_new_message_too_large_is_named_among_the_new_ones(
    pruner: ContextManager,
) -> None:
    messages = [SYSTEM, Message(Role.USER, "hi"), Message(Role.USER, words("huge", 5_000))]
    with pytest.raises(RequestError) as caught:
        await pruner.fit(SMALL_GPT, messages, OUTPUT, seqs=[0, 1])
    assert caught.value.field == "messages[0]"


async def test_an_output_budget_that_fills_the_window_is_refused(
    pruner: ContextManager,
) -> None:
    with pytest.raises(RequestError) as caught:
        await pruner.fit(SMALL_GPT, [Message(Role.USER, "hi")], SMALL_WINDOW)
    assert caught.value.field == "max_output_tokens"


def test_min_tokens_counts_what_is_never_removed(
    pruner: ContextManager, counter: TokenCounter
) -> None:
    pinned = Message(Role.ASSISTANT, "Pinned fact.", pinned=True)
    latest = Message(Role.USER, "Latest?")
    messages = [SYSTEM, *dialogue(5), pinned, *dialogue(2), latest]
    assert pruner.min_tokens(SMALL_GPT, messages) == counter.count_local(
        SMALL_GPT, [SYSTEM, pinned, latest]
    )


async def test_a_failing_summarizer_falls_back_to_pruning(
    manager: ContextManager, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(error_status=400))
    messages = [SYSTEM, *dialogue(30), Message(Role.USER, "Go on.")]
    fitted = await manager.fit(SMALL_GPT, messages, OUTPUT)
    assert summarizer_calls(emulator) == 1
    assert fitted.replaced is None
    assert fitted.report.summarized_messages == 0
    assert fitted.report.pruned_messages > 0
    assert fitted.report.sent_tokens <= BUDGET
    assert_alternates(fitted.messages)


async def test_a_summary_is_stored_and_reused_by_the_next_request(
    config: RouterConfig,
    manager: ContextManager,
    counter: TokenCounter,
    emulator: Emulator,
) -> None:
    conversations = ConversationService(MemoryStore(), counter, config)
    pinned = Message(Role.USER, "Pinned: my account number is 31337.", pinned=True)
    created = await conversations.create([SYSTEM, pinned, Message(Role.ASSISTANT, "Noted.")], {})
    for i in range(20):
        turn = await conversations.open_turn(created.id, [Message(Role.USER, words(f"q{i}", 60))])
        await conversations.record_turn(turn, words(f"a{i}", 60), model_id=SMALL_GPT)

    turn = await conversations.open_turn(created.id, [Message(Role.USER, "My account number?")])
    fitted = await manager.fit(SMALL_GPT, turn.messages, OUTPUT, seqs=turn.seqs)
    assert summarizer_calls(emulator) == 1
    record = fitted.summary_record
    assert record is not None
    assert fitted.replaced is not None
    assert record.replaces == tuple(turn.seqs[i] for i in fitted.replaced.indexes)
    appended = await conversations.record_turn(turn, "31337.", model_id=SMALL_GPT, fitted=fitted)
    assert appended.summary is not None

    stored = await conversations.get(created.id)
    assert stored.message_count == 3 + 40 + 2 + 1  # every original kept, plus the summary
    follow_up = await conversations.open_turn(created.id, [Message(Role.USER, "Thanks!")])
    assert record.message in [m.message for m in follow_up.history]
    refit = await manager.fit(SMALL_GPT, follow_up.messages, OUTPUT, seqs=follow_up.seqs)
    assert summarizer_calls(emulator) == 1  # the stored summary is reused
    assert refit.replaced is None
    assert refit.messages == follow_up.messages
    assert pinned.content in contents(refit)
