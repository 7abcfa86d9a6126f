"""What only the SQLite store has: a file that outlives the process, and can be damaged."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from modelrouter_server.context import SQLiteStore, SummaryRecord
from modelrouter_server.domain import Message, Role
from modelrouter_server.errors import StoreError

OPENING = (Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Remember: the code is 4711."))


def turn(i: int) -> tuple[Message, Message]:
    return Message(Role.USER, f"question {i}"), Message(Role.ASSISTANT, f"answer {i}")


async def test_conversations_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = await SQLiteStore.open(path)
    created = await store.create(OPENING, {"user": "ada"})
    await store.append(created.id, turn(1))
    summary = SummaryRecord(Message(Role.USER, "The user asked question 1."), (2, 3), tokens=9)
    await store.append(created.id, turn(2), summary=summary)
    before = await store.get(created.id)
    await store.aclose()

    reopened = await SQLiteStore.open(path)
    try:
        after = await reopened.get(created.id)
        assert after == before
        assert [m.message.content for m in after.history()][2] == "The user asked question 1."
        assert [c.id for c in (await reopened.list()).conversations] == [created.id]
    finally:
        await reopened.aclose()


async def test_the_database_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = await SQLiteStore.open(path)
    try:
        with sqlite3.connect(path) as probe:
            assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await store.aclose()


async def test_a_corrupt_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = await SQLiteStore.open(path)
    await store.create(OPENING, {})
    await store.aclose()
    path.write_bytes(b"this is not a database, just garbage " * 200)

    with pytest.raises(StoreError, match="cannot open") as caught:
        await SQLiteStore.open(path)
    assert str(path) in str(caught.value)


async def test_unreadable_rows_are_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = await SQLiteStore.open(path)
    try:
        created = await store.create(OPENING, {})
        with sqlite3.connect(path) as vandal:
            vandal.execute("UPDATE messages SET role = 'wizard' WHERE seq = 1")
        with pytest.raises(StoreError, match="unreadable data"):
            await store.get(created.id)
    finally:
        await store.aclose()


async def test_a_failed_append_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = await SQLiteStore.open(path)
    try:
        created = await store.create(OPENING, {})
        # SQLite itself refuses the second message of the turn, after the first was inserted.
        with sqlite3.connect(path) as admin:
            admin.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.content = 'boom' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        doomed = (Message(Role.USER, "fine"), Message(Role.ASSISTANT, "boom"))
        with pytest.raises(StoreError, match="refused"):
            await store.append(created.id, doomed)

        after = await store.get(created.id)
        assert after.message_count == 2
        assert [m.message.content for m in after.messages] == [m.content for m in OPENING]
        # And the store still works.
        assert [m.seq for m in (await store.append(created.id, turn(1))).messages] == [2, 3]
    finally:
        await store.aclose()


async def test_two_stores_on_one_file_allocate_distinct_seqs(tmp_path: Path) -> None:
    """Two connections on one file (as two router processes would have) append at once."""
    path = tmp_path / "conversations.db"
    first = await SQLiteStore.open(path)
    second = await SQLiteStore.open(path)
    try:
        created = await first.create(OPENING, {})
        await asyncio.gather(
            *((first if i % 2 else second).append(created.id, turn(i)) for i in range(50))
        )
        got = await first.get(created.id)
        assert [m.seq for m in got.messages] == list(range(102))
        contents = [m.message.content for m in got.messages]
        assert sorted(c for c in contents if c.startswith("question")) == sorted(
            f"question {i}" for i in range(50)
        )
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    with sqlite3.connect(path) as future:
        future.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        await SQLiteStore.open(path)


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "conversations.db")
    await store.aclose()
    await store.aclose()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        await store.list()
