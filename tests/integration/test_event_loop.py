"""The event loop never waits on one request: while a huge prompt of one repeated
character (the slowest text to tokenize) is counted and stored, a concurrent ListModels
is answered first. Ordered by events: the huge call is known to be running (admitted)
before ListModels is sent, and must still be running when ListModels returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from modelrouter_client import AsyncModelRouterClient, assistant, pb, user
from modelrouter_server.app import App
from modelrouter_server.emulator import Emulator

from .conftest import make_config

_MIB = 1024 * 1024
_HUGE = "a" * (8 * _MIB)
_OPTIONS = [("grpc.max_receive_message_length", 64 * _MIB)]


@pytest.fixture
async def app(emulator: Emulator) -> AsyncIterator[App]:
    config = make_config(
        limits={
            "max_message_bytes": 16 * _MIB,
            "max_request_bytes": 32 * _MIB,
            "max_response_bytes": 32 * _MIB,
        }
    )
    app = await App.start(config, env={}, host="127.0.0.1", port=0, emulator=emulator)
    yield app
    await app.stop(grace_s=0)


async def _clients(app: App) -> tuple[AsyncModelRouterClient, AsyncModelRouterClient]:
    target = f"127.0.0.1:{app.port}"
    big = AsyncModelRouterClient(
        channel=grpc.aio.insecure_channel(target, options=_OPTIONS), default_timeout=300
    )
    return big, AsyncModelRouterClient(target, default_timeout=60)


async def test_list_models_answers_while_a_huge_generate_is_counted(app: App) -> None:
    big, probe = await _clients(app)
    async with big, probe:
        huge = asyncio.create_task(big.generate([user(_HUGE)], model="claude-3-7-sonnet"))
        await app.admission.wait_for_in_flight(1)
        models = await probe.list_models()
        assert models
        assert not huge.done(), "the huge request finished before ListModels was answered"
        # 8 MiB of one character is far more than any window: refused, after counting.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await huge
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_list_models_answers_while_a_huge_conversation_is_created(app: App) -> None:
    big, probe = await _clients(app)
    async with big, probe:
        huge = asyncio.create_task(big.create_conversation([user(_HUGE), assistant("Noted.")]))
        await app.admission.wait_for_in_flight(1)
        models = await probe.list_models()
        assert models
        assert not huge.done(), "the huge request finished before ListModels was answered"
        conversation = await huge
        assert conversation.messages[0].message.content == _HUGE


async def test_large_texts_encoded_in_slices_read_back_whole_and_paged(app: App) -> None:
    # Multi-byte text past the size from which replies are encoded in slices.
    large = "é€ü" * 200_000 + "end"
    big, _ = await _clients(app)
    async with big:
        opening = [user("first"), assistant(large), user(large + "!"), assistant("ok")]
        created = await big.create_conversation(opening, metadata={"k": "v"})
        assert [m.message.content for m in created.messages] == ["first", large, large + "!", "ok"]
        got = await big.get_conversation(created.id)
        assert got == created
        stub = big._stub
        first = await stub.GetConversation(
            pb.GetConversationRequest(id=created.id, message_page_size=2)
        )
        assert [m.seq for m in first.conversation.messages] == [0, 1]
        token = first.conversation.next_message_page_token
        rest = await stub.GetConversation(
            pb.GetConversationRequest(id=created.id, message_page_token=token)
        )
        assert [m.message.content for m in rest.conversation.messages] == [large + "!", "ok"]
        assert rest.conversation.metadata == {"k": "v"} and rest.conversation.message_count == 4
