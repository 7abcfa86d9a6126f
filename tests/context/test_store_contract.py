"""One contract suite, run over every conversation store: memory, SQLite, Redis on one
server and Redis on a three-node cluster."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from modelrouter_server.context import (
    ConversationStore,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    SummaryRecord,
)
from modelrouter_server.domain import Importance, Message, Role
from modelrouter_server.errors import ConversationNotFound, RequestError, TurnAlreadyRecorded

from .conftest import RedisClusterServers, RedisServer

OPENING = (
    Message(Role.SYSTEM, "You are a careful assistant."),
    Message(Role.USER, "My name is Ada.", pinned=True, importance=Importance.HIGH),
    Message(Role.ASSISTANT, "Nice to meet you, Ada.", importance=Importance.LOW),
)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConversationStore]:
    opened: ConversationStore
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = await SQLiteStore.open(tmp_path / "conversations.db")
    else:
        fixture = "redis_cluster" if request.param == "redis-cluster" else "redis_server"
        server: RedisServer | RedisClusterServers = request.getfixturevalue(fixture)
        # A fresh key prefix per test keeps tests apart on the shared server.
        opened = await RedisStore.open(
            server.url,
            key_prefix=f"test-{uuid.uuid4().hex}:",
            connect_timeout_s=30.0,  # guards: a loaded machine can take seconds
            timeout_s=30.0,
        )
    yield opened
    await opened.aclose()


def turn(i: int) -> tuple[Message, Message]:
    return Message(Role.USER, f"question {i}"), Message(Role.ASSISTANT, f"answer {i}")


async def test_create_and_get_round_trip(store: ConversationStore) -> None:
    metadata = {"agent": "planner", "team": "équipe ✓"}
    created = await store.create(OPENING, metadata, tokens=[7, 8, 9])
    assert created.message_count == 3
    assert [m.seq for m in created.messages] == [0, 1, 2]

    got = await store.get(created.id)
    assert got.id == created.id
    assert dict(got.metadata) == metadata
    assert got.created_at == created.created_at
    assert got.message_count == 3
    assert tuple(m.message for m in got.messages) == OPENING
    assert [m.tokens for m in got.messages] == [7, 8, 9]
    assert [m.seq for m in got.messages] == [0, 1, 2]
    assert all(m.summarized_by is None and not m.is_summary for m in got.messages)
    assert got.messages[1].message.pinned
    assert got.messages[1].message.importance is Importance.HIGH


async def test_an_empty_conversation_can_be_created(store: ConversationStore) -> None:
    created = await store.create((), {})
    got = await store.get(created.id)
    assert got.messages == ()
    assert got.message_count == 0


async def test_unknown_ids_are_not_found(store: ConversationStore) -> None:
    with pytest.raises(ConversationNotFound):
        await store.get("nope")
    with pytest.raises(ConversationNotFound):
        await store.delete("nope")
    with pytest.raises(ConversationNotFound):
        await store.append("nope", turn(0))


async def test_delete_removes_the_conversation(store: ConversationStore) -> None:
    kept = await store.create(OPENING, {})
    gone = await store.create(OPENING, {})
    await store.delete(gone.id)
    with pytest.raises(ConversationNotFound):
        await store.get(gone.id)
    with pytest.raises(ConversationNotFound):
        await store.append(gone.id, turn(1))
    listed = [c.id for c in (await store.list()).conversations]
    assert gone.id not in listed
    assert kept.id in listed
    assert (await store.get(kept.id)).message_count == 3


async def test_append_allocates_the_next_seqs(store: ConversationStore) -> None:
    created = await store.create(OPENING, {})
    first = await store.append(created.id, turn(1), tokens=[4, 5])
    second = await store.append(created.id, turn(2))
    assert [m.seq for m in first.messages] == [3, 4]
    assert [m.seq for m in second.messages] == [5, 6]
    assert first.summary is None

    got = await store.get(created.id)
    assert [m.seq for m in got.messages] == list(range(7))
    assert [m.message.content for m in got.messages[3:]] == [
        "question 1",
        "answer 1",
        "question 2",
        "answer 2",
    ]
    assert [m.tokens for m in got.messages[3:5]] == [4, 5]
    assert got.updated_at >= got.created_at


async def test_list_pages_newest_first(store: ConversationStore) -> None:
    ids = []
    for i in range(7):
        ids.append((await store.create((), {"n": str(i)})).id)
    seen: list[str] = []
    token = ""
    sizes = []
    while True:
        page = await store.list(page_size=3, page_token=token)
        sizes.append(len(page.conversations))
        seen.extend(c.id for c in page.conversations)
        assert all(c.messages == () for c in page.conversations)
        token = page.next_page_token
        if not token:
            break
    assert sizes == [3, 3, 1]
    assert seen == list(reversed(ids))


async def test_list_reports_message_counts(store: ConversationStore) -> None:
    created = await store.create(OPENING, {"k": "v"})
    await store.append(created.id, turn(1))
    (listed,) = (await store.list(page_size=1)).conversations
    assert listed.id == created.id
    assert listed.message_count == 5
    assert dict(listed.metadata) == {"k": "v"}


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


BAD_TOKENS = [
    "not-a-token",
    "9" * 30,
    _token("9" * 30 + ":abc"),
    _token("-5:abc"),
    _token("12:"),
    _token(" 12:abc"),
    "A" * 5000,
    "%%%",
]


async def test_list_rejects_bad_paging(store: ConversationStore) -> None:
    await store.create(OPENING, {})
    for token in BAD_TOKENS:
        with pytest.raises(RequestError) as caught:
            await store.list(page_token=token)
        assert caught.value.field == "page_token", token
    with pytest.raises(RequestError, match="page_size"):
        await store.list(page_size=-1)
    # A token naming the far past or future is well formed: an empty page, or everything.
    assert (await store.list(page_token=_token("0:a"))).conversations == ()
    assert len((await store.list(page_token=_token(f"{10**17 - 1}:z"))).conversations) == 1


async def test_a_turn_records_its_request_id_once(store: ConversationStore) -> None:
    created = await store.create(OPENING, {})
    added = await store.append(created.id, turn(1), tokens=[1, 2], request_id="req-1")
    assert [m.request_id for m in added.messages] == ["req-1", "req-1"]
    with pytest.raises(TurnAlreadyRecorded):
        await store.append(created.id, turn(2), request_id="req-1")
    # Without an id, or with the same id in another conversation, nothing conflicts.
    await store.append(created.id, turn(3))
    await store.append(created.id, turn(4))
    other = await store.create(OPENING, {})
    await store.append(other.id, turn(5), request_id="req-1")

    got = await store.get(created.id)
    assert [m.message.content for m in got.messages][3:] == [
        "question 1",
        "answer 1",
        "question 3",
        "answer 3",
        "question 4",
        "answer 4",
    ]
    assert [m.request_id for m in got.messages] == ["", "", "", "req-1", "req-1", "", "", "", ""]


async def test_concurrent_turns_with_one_request_id_store_one(store: ConversationStore) -> None:
    created = await store.create(OPENING, {})
    results = await asyncio.gather(
        *(store.append(created.id, turn(i), request_id="same") for i in range(8)),
        return_exceptions=True,
    )
    stored = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, TurnAlreadyRecorded)]
    assert len(stored) == 1 and len(refused) == 7
    got = await store.get(created.id)
    assert got.message_count == len(OPENING) + 2


async def test_summary_is_recorded_and_nothing_is_lost(store: ConversationStore) -> None:
    created = await store.create(OPENING, {})
    await store.append(created.id, turn(1))
    await store.append(created.id, turn(2))
    summary = SummaryRecord(Message(Role.USER, "Ada asked two questions."), (2, 3, 4), tokens=6)

    result = await store.append(created.id, turn(3), summary=summary)
    assert [m.seq for m in result.messages] == [7, 8]
    assert result.summary is not None
    assert result.summary.seq == 9
    assert result.summary.summarizes == (2, 3, 4)

    got = await store.get(created.id)
    assert got.message_count == 10
    by_seq = {m.seq: m for m in got.messages}
    assert [by_seq[s].summarized_by for s in (2, 3, 4)] == [9, 9, 9]
    assert by_seq[9].is_summary
    assert by_seq[9].tokens == 6
    # Originals are kept: every message ever appended is still stored.
    assert by_seq[3].message.content == "question 1"

    history = [m.seq for m in got.history()]
    assert history == [0, 1, 9, 5, 6, 7, 8]


async def test_a_nested_summary_replaces_the_older_one(store: ConversationStore) -> None:
    created = await store.create(OPENING, {})
    for i in range(1, 4):
        await store.append(created.id, turn(i))
    first = SummaryRecord(Message(Role.USER, "first summary"), (2, 3, 4))
    await store.append(created.id, turn(4), summary=first)  # summary seq 11
    second = SummaryRecord(Message(Role.USER, "second summary"), (11, 5, 6))
    result = await store.append(created.id, turn(5), summary=second)
    assert result.summary is not None

    history = (await store.get(created.id)).history()
    assert [m.message.content for m in history][:3] == [
        OPENING[0].content,
        OPENING[1].content,
        "second summary",
    ]
    assert "first summary" not in [m.message.content for m in history]


async def test_a_summary_of_already_summarized_messages_is_dropped(
    store: ConversationStore,
) -> None:
    """Two requests summarized the same span concurrently: the first one recorded wins."""
    created = await store.create(OPENING, {})
    await store.append(created.id, turn(1))
    winner = SummaryRecord(Message(Role.USER, "winner"), (2, 3, 4))
    loser = SummaryRecord(Message(Role.USER, "loser"), (3, 4))
    assert (await store.append(created.id, turn(2), summary=winner)).summary is not None
    late = await store.append(created.id, turn(3), summary=loser)
    assert late.summary is None
    assert len(late.messages) == 2  # the turn itself is stored all the same

    contents = [m.message.content for m in (await store.get(created.id)).messages]
    assert "loser" not in contents
    assert contents.count("winner") == 1


async def test_a_summary_of_unknown_seqs_is_dropped(store: ConversationStore) -> None:
    created = await store.create(OPENING, {})
    bogus = SummaryRecord(Message(Role.USER, "bogus"), (1, 99))
    result = await store.append(created.id, turn(1), summary=bogus)
    assert result.summary is None
    assert (await store.get(created.id)).message_count == 5


async def test_concurrent_appends_lose_and_duplicate_nothing(store: ConversationStore) -> None:
    created = await store.create(OPENING, {})
    results = await asyncio.gather(*(store.append(created.id, turn(i)) for i in range(50)))

    allocated = sorted(m.seq for r in results for m in r.messages)
    assert allocated == list(range(3, 103))
    got = await store.get(created.id)
    assert got.message_count == 103
    assert [m.seq for m in got.messages] == list(range(103))
    contents = [m.message.content for m in got.messages[3:]]
    for i in range(50):
        # Each turn is stored once, its two messages adjacent and in order.
        at = contents.index(f"question {i}")
        assert contents.count(f"question {i}") == 1
        assert contents[at + 1] == f"answer {i}"


async def test_a_token_count_per_message_is_required(store: ConversationStore) -> None:
    created = await store.create((), {})
    with pytest.raises(ValueError, match="token counts"):
        await store.append(created.id, turn(1), tokens=[1])


async def test_each_owner_sees_only_its_own_conversations(store: ConversationStore) -> None:
    alice = await store.create(OPENING, {"who": "alice"}, owner="alice")
    bob = await store.create(OPENING, {"who": "bob"}, owner="bob")
    legacy = await store.create(OPENING, {"who": "default"})
    assert (await store.get(alice.id, owner="alice")).metadata == {"who": "alice"}
    # Another owner's id is not found, exactly like an id that does not exist.
    for conversation_id, owner in ((alice.id, "bob"), (bob.id, "alice"), (legacy.id, "alice")):
        with pytest.raises(ConversationNotFound):
            await store.get(conversation_id, owner=owner)
        with pytest.raises(ConversationNotFound):
            await store.delete(conversation_id, owner=owner)
    assert [c.id for c in (await store.list(owner="alice")).conversations] == [alice.id]
    assert [c.id for c in (await store.list(owner="bob")).conversations] == [bob.id]
    assert [c.id for c in (await store.list()).conversations] == [legacy.id]
    # The refused deletes deleted nothing; the owner's own does.
    await store.delete(bob.id, owner="bob")
    assert (await store.list(owner="bob")).conversations == ()
    assert (await store.get(legacy.id)).message_count == 3


async def test_an_owners_pages_hold_only_its_conversations(store: ConversationStore) -> None:
    mine = [(await store.create((), {}, owner="alice")).id for _ in range(5)]
    for _ in range(5):
        await store.create((), {}, owner="bob")
    seen: list[str] = []
    token = ""
    while True:
        page = await store.list(2, token, owner="alice")
        seen.extend(c.id for c in page.conversations)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(mine))
