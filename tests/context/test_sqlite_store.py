"""What only the SQLite store has: a file that outlives the process, and can be damaged."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from modelrouter_server.context import SQLiteStore, SummaryRecord
from modelrouter_server.domain import Message, Role
from modelrouter_server.errors import ConversationNotFound, StoreError, TurnAlreadyRecorded

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


_V1_SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY, created_us INTEGER NOT NULL, updated_us INTEGER NOT NULL,
    metadata TEXT NOT NULL, message_count INTEGER NOT NULL
);
CREATE INDEX conversations_newest ON conversations (created_us DESC, id DESC);
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, pinned INTEGER NOT NULL,
    importance INTEGER NOT NULL, tokens INTEGER NOT NULL, created_us INTEGER NOT NULL,
    summarized_by INTEGER, summarizes TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
INSERT INTO conversations VALUES ('old', 1700000000000000, 1700000000000000, '{}', 2);
INSERT INTO messages VALUES ('old', 0, 'user', 'hi', 0, 1, 3, 1700000000000000, NULL, '[]');
INSERT INTO messages VALUES ('old', 1, 'assistant', 'hello', 0, 1, 3, 1700000000000000, NULL, '[]');
PRAGMA user_version = 1;
"""


async def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    with sqlite3.connect(path) as old:
        old.executescript(_V1_SCHEMA)
    store = await SQLiteStore.open(path)
    try:
        got = await store.get("old")
        assert [m.message.content for m in got.messages] == ["hi", "hello"]
        assert [m.request_id for m in got.messages] == ["", ""]
        await store.append("old", turn(1), request_id="r1")
        with pytest.raises(TurnAlreadyRecorded):
            await store.append("old", turn(2), request_id="r1")
        assert (await store.get("old")).message_count == 4
    finally:
        await store.aclose()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 5
    # Conversations from before tenants belong to the default owner, and only to it.
    store = await SQLiteStore.open(path)
    try:
        assert [c.id for c in (await store.list()).conversations] == ["old"]
        assert (await store.list(owner="alice")).conversations == ()
        with pytest.raises(ConversationNotFound):
            await store.get("old", owner="alice")
    finally:
        await store.aclose()


async def test_two_openers_of_an_old_file_both_migrate_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conversations.db"
    with sqlite3.connect(path) as old:
        old.executescript(_V1_SCHEMA)
        old.execute("PRAGMA journal_mode=WAL")
    # Both openers must reach their migration transaction while a third holds the write
    # lock, so both have done every read they do before it; then the lock is let go.
    waiting = threading.Semaphore(0)
    connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = connect(*args, **kwargs)

        def trace(statement: str) -> None:
            if statement.startswith("BEGIN IMMEDIATE"):
                waiting.release()

        db.set_trace_callback(trace)
        return db

    holder = connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    openers = [asyncio.create_task(SQLiteStore.open(path, busy_timeout_s=60)) for _ in range(2)]
    for _ in openers:
        await asyncio.to_thread(waiting.acquire)
    holder.execute("COMMIT")
    holder.close()
    stores = await asyncio.gather(*openers)
    try:
        for store in stores:
            assert [m.request_id for m in (await store.get("old")).messages] == ["", ""]
        await stores[0].append("old", turn(1), request_id="r1")
        assert (await stores[1].get("old")).messages[-1].request_id == "r1"
    finally:
        for store in stores:
            await store.aclose()
    with connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 5


async def test_a_damaged_row_is_left_out_of_list_for_everyone_else(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = await SQLiteStore.open(path)
    try:
        good = [await store.create(OPENING, {"n": str(i)}) for i in range(3)]
        bad = await store.create(OPENING, {})
        with sqlite3.connect(path) as vandal:
            vandal.execute("UPDATE conversations SET metadata = '{oops' WHERE id = ?", (bad.id,))
            vandal.execute("UPDATE conversations SET created_us = 'x' WHERE id = ?", (good[0].id,))
        listed = await store.list()
        assert {c.id for c in listed.conversations} == {good[1].id, good[2].id}
        # The damaged conversation alone is unreadable; the others still are.
        with pytest.raises(StoreError, match="unreadable data"):
            await store.get(bad.id)
        assert (await store.get(good[1].id)).message_count == 2
    finally:
        await store.aclose()


async def test_a_missing_directory_is_a_one_line_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open") as caught:
        await SQLiteStore.open(tmp_path / "gone" / "conversations.db")
    assert "\n" not in str(caught.value)
