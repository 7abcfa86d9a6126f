"""Size limits and caller values in errors, through real gRPC (issue 8's table)."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_client import AsyncModelRouterClient, assistant, pb, system, user

from .conftest import StartRouter
from .redis_fixture import redis_url  # noqa: F401  # the fixture, used by name
from .status_details import details_of

MIB = 1024 * 1024


def violation(error: grpc.aio.AioRpcError) -> str:
    (bad,) = details_of(error, error_details_pb2.BadRequest)
    field: str = bad.field_violations[0].field
    return field


async def refused(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


CREATE_CASES = [
    ("assistant first", [assistant("hi")], {}, "messages[0].role"),
    ("two user turns", [user("a"), user("b")], {}, "messages[1].role"),
    ("ends with a user turn", [system("s"), user("a")], {}, "messages[1].role"),
    ("100k messages", [user("q"), assistant("a")] * 50_000, {}, "messages"),
    ("1,000 metadata entries", [], {f"k{i}": "v" for i in range(1000)}, "metadata"),
    ("5 MB of metadata", [], {"blob": "x" * (5 * 1000 * 1000)}, "metadata"),
    ("empty content", [user(" ")], {}, "messages[0].content"),
]


@pytest.mark.parametrize(
    ("messages", "metadata", "field"),
    [c[1:] for c in CREATE_CASES],
    ids=[c[0] for c in CREATE_CASES],
)
async def test_create_conversation_refuses_what_no_later_turn_could_use(
    router: AsyncModelRouterClient,
    messages: list[pb.Message],
    metadata: dict[str, str],
    field: str,
) -> None:
    request = pb.CreateConversationRequest(messages=messages, metadata=metadata)
    error = await refused(router._stub.CreateConversation(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(error) == field
    assert len(error.details() or "") < 400
    assert (await router.list_conversations()).conversations == []


async def test_a_created_history_is_usable_by_the_next_generate(
    router: AsyncModelRouterClient,
) -> None:
    created = await router.create_conversation(
        [system("Be brief."), user("Hi"), assistant("Hello.")], metadata={"k": "v"}
    )
    reply = await router.generate("Again", conversation_id=created.id)
    assert reply.text
    stored = await router.get_conversation(created.id)
    assert [m.message.content for m in stored.messages][-2:] == ["Again", reply.text]


async def test_a_message_over_the_byte_limit_names_its_content(
    router: AsyncModelRouterClient,
) -> None:
    error = await refused(router.generate("é" * (1024 * 1024 + 1)))  # 2 MiB + 2 bytes
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(error) == "messages[0].content"
    assert (await router.generate("still serving")).text


async def test_a_request_over_max_request_bytes_is_refused_naming_the_limit(
    start_router: StartRouter,
) -> None:
    client = await start_router(limits={"max_request_bytes": 2 * MIB, "max_message_bytes": MIB})
    parts = [user("x" * (MIB - 100)), assistant("y" * (MIB - 100)), user("z" * 200_000)]
    for call in (
        client.generate(parts),
        client._stub.GenerateStream(pb.GenerateStreamRequest(messages=parts)).read(),
        client._stub.CreateConversation(pb.CreateConversationRequest(messages=parts)),
    ):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = error.details() or ""
        assert "max_request_bytes (2097152)" in details, details
        assert "modelrouter.v1." in details and "Request" in details
        (info,) = details_of(error, error_details_pb2.ErrorInfo)
        assert info.metadata["limit"] == "max_request_bytes"
    # Just under the limit, a request is decoded and answered.
    under = pb.CountTokensRequest(messages=[*parts[:2], user("z")], model="gpt-4o-mini")
    assert under.ByteSize() > MIB
    assert (await client._stub.CountTokens(under, timeout=30)).input_tokens > 0


HUGE_ID = "c" * 20_000


async def test_a_20kb_id_is_refused_without_being_echoed(router: AsyncModelRouterClient) -> None:
    stub = router._stub
    calls: dict[str, list[Awaitable[object]]] = {
        "conversation_id": [
            stub.Generate(pb.GenerateRequest(messages=[user("hi")], conversation_id=HUGE_ID)),
            stub.CountTokens(pb.CountTokensRequest(messages=[user("hi")], conversation_id=HUGE_ID)),
        ],
        "id": [
            stub.GetConversation(pb.GetConversationRequest(id=HUGE_ID)),
            stub.DeleteConversation(pb.DeleteConversationRequest(id=HUGE_ID)),
        ],
        "request_id": [
            stub.Generate(pb.GenerateRequest(messages=[user("hi")], request_id=HUGE_ID))
        ],
    }
    for field, pending in calls.items():
        for call in pending:
            error = await refused(call)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
            assert violation(error) == field
            assert "ccccc" not in (error.details() or "")


async def test_unknown_ids_are_quoted_short_and_name_the_request_field(
    router: AsyncModelRouterClient,
) -> None:
    unknown = "u" * 128
    for call in (
        router.get_conversation(unknown),
        router.delete_conversation(unknown),
    ):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        details = error.details() or ""
        assert details.startswith("id: ")
        assert "u" * 100 in details and "u" * 101 not in details
    error = await refused(router.generate("hi", conversation_id=unknown))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (error.details() or "").startswith("conversation_id: ")
    error = await refused(router.generate("hi", model="m" * 5000))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert len(error.details() or "") < 1000


async def test_a_5mb_conversation_reads_back_in_pages_on_a_default_client(
    router: AsyncModelRouterClient,
) -> None:
    bodies = ["a" * (1500 * 1000), "b" * (1500 * 1000), "c" * (1500 * 1000), "d" * (1000 * 1000)]
    opening = [user(bodies[0]), assistant(bodies[1]), user(bodies[2]), assistant(bodies[3])]
    created = await router.create_conversation(opening)
    assert created.message_count == 4

    # A channel with gRPC's defaults: 4 MiB is the largest reply it accepts.
    target = router.target
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ModelRouterServiceStub(channel)
        seen: list[str] = []
        pages = 0
        token = ""
        while True:
            reply = await stub.GetConversation(
                pb.GetConversationRequest(id=created.id, message_page_token=token), timeout=30
            )
            assert reply.ByteSize() <= 4 * MIB
            page = reply.conversation
            assert page.message_count == 4
            seen.extend(m.message.content for m in page.messages)
            pages += 1
            token = page.next_message_page_token
            if not token:
                break
        assert seen == bodies
        assert pages >= 2

        small = (
            await stub.GetConversation(
                pb.GetConversationRequest(id=created.id, message_page_size=1), timeout=30
            )
        ).conversation
        assert [m.seq for m in small.messages] == [0]
        rest = (
            await stub.GetConversation(
                pb.GetConversationRequest(
                    id=created.id,
                    message_page_size=1,
                    message_page_token=small.next_message_page_token,
                ),
                timeout=30,
            )
        ).conversation
        assert [m.seq for m in rest.messages] == [1]


@pytest.mark.parametrize(
    "token", ["garbage!", "9" * 30, "bTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "x" * 5000]
)
async def test_a_bad_message_page_token_names_the_field(
    router: AsyncModelRouterClient, token: str
) -> None:
    created = await router.create_conversation([system("s")])
    error = await refused(
        router._stub.GetConversation(
            pb.GetConversationRequest(id=created.id, message_page_token=token)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(error) == "message_page_token"


async def test_a_list_of_conversations_full_of_metadata_fits_a_default_client(
    router: AsyncModelRouterClient,
) -> None:
    metadata = {f"k{i}": "v" * 1000 for i in range(16)}  # 16 KB: just under the limit
    created = {(await router.create_conversation([], metadata=metadata)).id for _ in range(300)}
    async with grpc.aio.insecure_channel(router.target) as channel:
        stub = pb_grpc.ModelRouterServiceStub(channel)
        listed: list[str] = []
        token = ""
        while True:
            page = await stub.ListConversations(
                pb.ListConversationsRequest(page_size=500, page_token=token), timeout=30
            )
            assert 0 < len(page.conversations) < 300
            listed.extend(c.id for c in page.conversations)
            token = page.next_page_token
            if not token:
                break
    assert sorted(listed) == sorted(created)


@pytest.mark.parametrize("store", ["memory", "sqlite", "redis"])
@pytest.mark.parametrize(
    "token", ["9" * 30, "garbage!", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODk6YQ=="]
)
async def test_a_bad_list_page_token_names_the_field(
    start_router: StartRouter,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store: str,
    token: str,
) -> None:
    context: dict[str, str] = {"store": store, "sqlite_path": str(tmp_path / "c.db")}
    if store == "redis":
        context["redis_url"] = request.getfixturevalue("redis_url")
    client = await start_router(context=context)
    created = await client.create_conversation([system("s")])
    error = await refused(client.list_conversations(page_token=token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(error) == "page_token"
    assert created.id in {c.id for c in (await client.list_conversations()).conversations}
