"""Server-side conversations through gRPC: history, appends, fitting, nothing lost."""

from __future__ import annotations

import asyncio
import tomllib

import grpc
import pytest
from modelrouter_client import AsyncModelRouterClient, pb, system, user
from modelrouter_server.app import emulated_models
from modelrouter_server.config import RouterConfig, default_config_path
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import TEST_OVERRIDES, StartRouter

GPT = "gpt-4o-mini-2024-07-18"


async def test_generate_on_a_conversation_sends_its_history_and_appends_the_turn(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    created = await router.create_conversation(
        [pb.Message(role=pb.ROLE_SYSTEM, content="The user is Ada.", pinned=True)],
        metadata={"agent": "test"},
    )
    first = await router.generate("Hello", conversation_id=created.id, model="gpt-4o-mini")
    # A long reply, abandoned after its first event: nothing of it is stored.
    emulator.enqueue("*", Behavior(tokens_per_second=5, output_tokens=2000))
    stream = router.stream("And again", conversation_id=created.id, model="gpt-4o-mini")
    second = await anext(stream)
    assert second.WhichOneof("event") == "start"
    await stream.aclose()  # type: ignore[attr-defined]  # an async generator
    third = await router.generate("Once more", conversation_id=created.id, model="gpt-4o-mini")

    sent = emulator.requests[-1].body
    assert isinstance(sent, dict)
    contents = [m["content"] for m in sent["messages"]]
    assert contents[:3] == ["The user is Ada.", "Hello", first.text]
    assert contents[-1] == "Once more"

    stored = await router.get_conversation(created.id)
    assert [m.message.content for m in stored.messages] == [
        "The user is Ada.",
        "Hello",
        first.text,
        "Once more",
        third.text,
    ]
    assert [m.seq for m in stored.messages] == [0, 1, 2, 3, 4]
    assert stored.messages[0].message.pinned
    assert all(m.tokens > 0 for m in stored.messages)
    assert dict(stored.metadata) == {"agent": "test"}

    listed = await router.list_conversations()
    assert [c.id for c in listed.conversations] == [created.id]
    assert listed.conversations[0].message_count == 5
    await router.delete_conversation(created.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await router.get_conversation(created.id)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_streamed_reply_is_stored_when_the_stream_finishes(
    router: AsyncModelRouterClient,
) -> None:
    created = await router.create_conversation([system("Be brief.")])
    text = "".join(
        [
            e.delta.text
            async for e in router.stream("Hi", conversation_id=created.id)
            if e.WhichOneof("event") == "delta"
        ]
    )
    stored = await router.get_conversation(created.id)
    assert [m.message.content for m in stored.messages] == ["Be brief.", "Hi", text]


async def test_concurrent_turns_on_one_conversation_lose_and_duplicate_nothing(
    router: AsyncModelRouterClient,
) -> None:
    created = await router.create_conversation([system("Count.")])
    # Two requests racing on one conversation each store their user turn and reply.
    replies = await asyncio.gather(
        *(router.generate(f"turn {i}", conversation_id=created.id) for i in range(8))
    )
    stored = await router.get_conversation(created.id)
    contents = [m.message.content for m in stored.messages]
    assert len(contents) == 1 + 2 * 8
    assert sorted(c for c in contents if c.startswith("turn ")) == sorted(
        f"turn {i}" for i in range(8)
    )
    assert [m.seq for m in stored.messages] == list(range(17))
    for reply in replies:
        assert reply.text in contents


async def test_one_message_larger_than_every_window_is_invalid_argument_naming_it(
    router: AsyncModelRouterClient,
) -> None:
    huge = "lorem " * 210_000  # about 210K tokens: more than any model's window
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await router.generate([system("Be brief."), user(huge)])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages[1]" in (caught.value.details() or "")


def _small_window_config() -> RouterConfig:
    raw = tomllib.loads(default_config_path().read_text())
    for section, values in TEST_OVERRIDES.items():
        raw.setdefault(section, {}).update(values)
    for model in raw["models"].values():
        model.update(context_window=3000, max_output_tokens=500, default_output_tokens=200)
    return RouterConfig.model_validate(raw)


async def test_long_history_is_summarized_for_the_serving_model_and_kept_in_the_store(
    start_router: StartRouter,
) -> None:
    config = _small_window_config()
    async with Emulator(emulated_models(config)) as small:
        router = await start_router(config=config, upstream=small)
        created = await router.create_conversation(
            [pb.Message(role=pb.ROLE_SYSTEM, content="Fact: the vault code is 4711.", pinned=True)]
        )
        report = None
        for turn in range(40):
            reply = await router.generate(
                f"Turn {turn}: " + "tell me more about the weather " * 10,
                conversation_id=created.id,
                model="gpt-4o-mini",
            )
            if reply.context.summarized_messages:
                report = reply.context
                break
        assert report is not None, "history never summarized"
        # Summarizing starts past 80% of the budget (window less output and margin).
        assert report.history_tokens > 0.8 * report.budget_tokens
        assert report.sent_tokens < report.history_tokens
        last_prompt = small.requests[-1].body
        assert isinstance(last_prompt, dict)
        assert "Fact: the vault code is 4711." in [m["content"] for m in last_prompt["messages"]]
        stored = await router.get_conversation(created.id)
        summaries = [m for m in stored.messages if m.is_summary]
        assert len(summaries) == 1
        replaced = [m for m in stored.messages if m.HasField("summarized_by")]
        assert {m.seq for m in replaced} == set(summaries[0].summarizes)
        # Nothing lost: every turn the caller sent is still stored verbatim.
        contents = [m.message.content for m in stored.messages]
        assert sum(c.startswith("Turn ") for c in contents) == turn + 1
