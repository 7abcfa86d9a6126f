"""The embedded conversation store: one SQLite file, the default.

The stdlib `sqlite3` runs on one dedicated worker thread that owns the connection: every
operation is a function queued to that thread, so operations of one process never interleave
and the event loop never blocks on disk. (aiosqlite is this same design as a dependency; the
few lines here avoid one.) Across processes sharing the file, `BEGIN IMMEDIATE` takes the
write lock before seqs are read, so two writers cannot allocate the same seq, and the
(conversation_id, seq) primary key would refuse a duplicate anyway.

WAL mode lets readers proceed during a write; `synchronous=NORMAL` in WAL keeps the file
consistent after a crash of the process or the machine (a power loss may drop the last
commits, never corrupt the file). Every write is one transaction: on any failure it is rolled
back, so nothing is half-written.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from modelrouter_server.context._records import (
    Stamps,
    appended,
    check_append,
    decode_page_token,
    encode_page_token,
    from_us,
    image_blobs,
    image_refs,
    message_from_fields,
    metadata_from_json,
    metadata_json,
    new_conversation_id,
    normalized_page_size,
    parts_to_json,
    summary_applies,
)
from modelrouter_server.context.store import (
    AppendResult,
    Conversation,
    ConversationPage,
    StoredMessage,
    SummaryRecord,
    new_conversation,
)
from modelrouter_server.domain import Message
from modelrouter_server.errors import ConversationNotFound, StoreError, TurnAlreadyRecorded
from modelrouter_server.quoting import quote
from modelrouter_server.sqlite_thread import close_on_thread, in_transaction, open_on_thread

T = TypeVar("T")
log = structlog.get_logger(__name__)

_SCHEMA_VERSION = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    message_count INTEGER NOT NULL,
    tenant TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS conversations_newest ON conversations (created_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_by_tenant
    ON conversations (tenant, created_us DESC, id DESC);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    pinned INTEGER NOT NULL,
    importance INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    summarized_by INTEGER,
    summarizes TEXT NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',
    parts TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_request ON messages (conversation_id, request_id)
    WHERE request_id <> '';
CREATE TABLE IF NOT EXISTS images (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS image_refs (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (sha256, conversation_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_refs_by_conversation ON image_refs (conversation_id);
"""

_MIGRATIONS = {
    # 1 -> 2: the request id of the turn that added each message (idempotent turns).
    1: "ALTER TABLE messages ADD COLUMN request_id TEXT NOT NULL DEFAULT ''",
    # 2 -> 3: the owning tenant; conversations from before tenants belong to the default
    # owner, "" (see ConversationStore).
    2: "ALTER TABLE conversations ADD COLUMN tenant TEXT NOT NULL DEFAULT ''",
    # 3 -> 4: content parts (images, tool calls and results) as JSON; '' for none.
    3: "ALTER TABLE messages ADD COLUMN parts TEXT NOT NULL DEFAULT ''",
    # 4 -> 5: image bytes once per content hash (`images`, and `image_refs`: which
    # conversations use each, created with the schema below). Parts stored before keep
    # their bytes inline and still read back.
    4: "CREATE TABLE IF NOT EXISTS images (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL)"
    " WITHOUT ROWID",
}

_MESSAGE_COLUMNS = (
    "seq, role, content, pinned, importance, tokens, created_us, summarized_by, summarizes,"
    " request_id, parts"
)


class _Corrupt(Exception):
    """Stored data that does not parse."""


def _message_row(row: Sequence[Any], images: Mapping[str, bytes]) -> StoredMessage:
    (
        seq,
        role,
        content,
        pinned,
        importance,
        tokens,
        created_us,
        summarized_by,
        summarizes,
        request_id,
        parts,
    ) = row
    try:
        message = message_from_fields(
            {
                "role": role,
                "content": content,
                "pinned": pinned,
                "importance": importance,
                "parts": parts,
            },
            images,
        )
        return StoredMessage(
            seq=int(seq),
            message=message,
            tokens=int(tokens),
            created_at=from_us(int(created_us)),
            summarized_by=None if summarized_by is None else int(summarized_by),
            summarizes=tuple(int(s) for s in json.loads(summarizes)),
            request_id=str(request_id),
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
        raise _Corrupt(f"message seq {seq}: {exc}") from exc


def _insert_message(
    db: sqlite3.Connection,
    conversation_id: str,
    seq: int,
    message: Message,
    tokens: int,
    created_us: int,
    summarizes: Sequence[int] = (),
    request_id: str = "",
) -> None:
    db.execute(
        f"INSERT INTO messages (conversation_id, {_MESSAGE_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
        (
            conversation_id,
            seq,
            message.role.value,
            message.content,
            int(message.pinned),
            int(message.importance),
            tokens,
            created_us,
            json.dumps(list(summarizes)),
            request_id,
            parts_to_json(message.parts) if message.parts else "",
        ),
    )
    for digest, data in image_blobs([message]).items():
        db.execute("INSERT OR IGNORE INTO images (sha256, data) VALUES (?, ?)", (digest, data))
        db.execute(
            "INSERT OR IGNORE INTO image_refs (conversation_id, sha256) VALUES (?, ?)",
            (conversation_id, digest),
        )


def _images_of(db: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> dict[str, bytes]:
    """The bytes of the images the message rows refer to (`parts` is their last column)."""
    wanted: set[str] = set()
    for row in rows:
        try:
            wanted |= image_refs(str(row[-1] or ""))
        except (ValueError, KeyError, TypeError):
            continue  # the row itself is reported corrupt when it is read
    if not wanted:
        return {}
    found = db.execute(
        f"SELECT sha256, data FROM images WHERE sha256 IN ({','.join('?' * len(wanted))})",
        tuple(wanted),
    ).fetchall()
    return {str(digest): bytes(data) for digest, data in found}


class SQLiteStore:
    """`ConversationStore` in one SQLite file. Open with `await SQLiteStore.open(path)`."""

    def __init__(self, path: str, executor: ThreadPoolExecutor, db: sqlite3.Connection) -> None:
        """Use `open`; this takes a connection already made on `executor`'s thread."""
        self._path = path
        self._executor = executor
        self._db = db
        self._closed = False
        self._stamp = Stamps()

    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout_s: float = 5.0) -> SQLiteStore:
        """Open (creating if needed) the database at `path`; `StoreError` if it is not a
        usable conversation database."""
        where = str(path)
        executor, db = await open_on_thread(
            where,
            what="sqlite store",
            thread_name="sqlite-store",
            busy_timeout_s=busy_timeout_s,
            prepare=_prepare,
        )
        return cls(where, executor, db)

    async def _run(self, what: str, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"sqlite store {self._path}: closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._db)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite store {self._path}: {what} failed: {exc}") from exc
        except _Corrupt as exc:
            raise StoreError(f"sqlite store {self._path}: {what}: unreadable data: {exc}") from exc

    async def create(
        self,
        messages: Sequence[Message],
        metadata: Mapping[str, str],
        *,
        tokens: Sequence[int] | None = None,
        owner: str = "",
    ) -> Conversation:
        counts = check_append(messages, tokens)
        conversation_id = new_conversation_id()
        stamp = self._stamp()
        meta = metadata_json(metadata)

        def work(db: sqlite3.Connection) -> None:
            def insert() -> None:
                db.execute(
                    "INSERT INTO conversations (id, created_us, updated_us, metadata,"
                    " message_count, tenant) VALUES (?, ?, ?, ?, ?, ?)",
                    (conversation_id, stamp, stamp, meta, len(messages), owner),
                )
                for seq, (message, n) in enumerate(zip(messages, counts, strict=True)):
                    _insert_message(db, conversation_id, seq, message, n, stamp)

            in_transaction(db, insert, write=True)

        await self._run("create", work)
        return new_conversation(conversation_id, messages, counts, metadata, from_us(stamp))

    async def get(self, conversation_id: str, *, owner: str = "") -> Conversation:
        def work(db: sqlite3.Connection) -> Conversation | None:
            def read() -> Conversation | None:
                head = db.execute(
                    "SELECT created_us, updated_us, metadata, message_count"
                    " FROM conversations WHERE id = ? AND tenant = ?",
                    (conversation_id, owner),
                ).fetchone()
                if head is None:
                    return None
                rows = db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?"
                    " ORDER BY seq",
                    (conversation_id,),
                ).fetchall()
                images = _images_of(db, rows)
                messages = [_message_row(r, images) for r in rows]
                return _conversation(conversation_id, head, messages)

            return in_transaction(db, read, write=False)

        found = await self._run(f"get {quote(conversation_id)}", work)
        if found is None:
            raise ConversationNotFound(conversation_id)
        return found

    async def list(
        self, page_size: int = 0, page_token: str = "", *, owner: str = ""
    ) -> ConversationPage:
        size = normalized_page_size(page_size)
        after = decode_page_token(page_token) if page_token else None

        def work(db: sqlite3.Connection) -> builtins.list[Any]:
            columns = "id, created_us, updated_us, metadata, message_count"
            if after is None:
                return db.execute(
                    f"SELECT {columns} FROM conversations WHERE tenant = ?"
                    " ORDER BY created_us DESC, id DESC LIMIT ?",
                    (owner, size + 1),
                ).fetchall()
            return db.execute(
                f"SELECT {columns} FROM conversations"
                " WHERE tenant = ? AND (created_us, id) < (?, ?)"
                " ORDER BY created_us DESC, id DESC LIMIT ?",
                (owner, *after, size + 1),
            ).fetchall()

        rows = await self._run("list", work)
        page: builtins.list[Conversation] = []
        for row in rows[:size]:
            try:
                page.append(_conversation(str(row[0]), row[1:], []))
            except _Corrupt as exc:
                # One damaged row must not hide every other conversation from every caller.
                log.warning("conversation_unreadable", store=self._path, error=str(exc))
        token = ""
        if len(rows) > size:
            # The cursor is the last row whose sort key is a number; a damaged key on the
            # last row only moves the next page's start back, never skips a conversation.
            for row in reversed(rows[:size]):
                if isinstance(row[1], int):
                    token = encode_page_token(row[1], str(row[0]))
                    break
        return ConversationPage(tuple(page), token)

    async def delete(self, conversation_id: str, *, owner: str = "") -> None:
        def work(db: sqlite3.Connection) -> int:
            def remove() -> int:
                # Read before the delete: ON DELETE CASCADE removes the refs with it.
                used = [
                    r[0]
                    for r in db.execute(
                        "SELECT sha256 FROM image_refs WHERE conversation_id = ?",
                        (conversation_id,),
                    )
                ]
                # Messages and image refs go by ON DELETE CASCADE, in the same transaction.
                cursor = db.execute(
                    "DELETE FROM conversations WHERE id = ? AND tenant = ?",
                    (conversation_id, owner),
                )
                if cursor.rowcount:
                    db.execute(
                        "DELETE FROM image_refs WHERE conversation_id = ?", (conversation_id,)
                    )
                    # An image goes with the last conversation that uses it.
                    for digest in used:
                        db.execute(
                            "DELETE FROM images WHERE sha256 = ? AND NOT EXISTS"
                            " (SELECT 1 FROM image_refs WHERE sha256 = ?)",
                            (digest, digest),
                        )
                return cursor.rowcount

            return in_transaction(db, remove, write=True)

        if await self._run(f"delete {quote(conversation_id)}", work) == 0:
            raise ConversationNotFound(conversation_id)

    async def append(
        self,
        conversation_id: str,
        messages: Sequence[Message],
        *,
        tokens: Sequence[int] | None = None,
        summary: SummaryRecord | None = None,
        request_id: str = "",
    ) -> AppendResult:
        counts = check_append(messages, tokens)
        stamp = self._stamp()

        def work(db: sqlite3.Connection) -> tuple[int, int | None] | bool | None:
            def add() -> tuple[int, int | None] | bool | None:
                head = db.execute(
                    "SELECT message_count FROM conversations WHERE id = ?", (conversation_id,)
                ).fetchone()
                if head is None:
                    return None
                # Inside the write transaction: no other writer can record the id between
                # this check and the inserts.
                if request_id and _turn_recorded(db, conversation_id, request_id):
                    return False
                base = int(head[0])
                for i, (message, n) in enumerate(zip(messages, counts, strict=True)):
                    _insert_message(
                        db, conversation_id, base + i, message, n, stamp, request_id=request_id
                    )
                end = base + len(messages)
                summary_seq = None
                if summary is not None and _summary_applies(db, conversation_id, summary, base):
                    summary_seq = end
                    _insert_summary(db, conversation_id, summary, summary_seq, stamp)
                    end += 1
                db.execute(
                    "UPDATE conversations SET message_count = ?, updated_us = ? WHERE id = ?",
                    (end, stamp, conversation_id),
                )
                return base, summary_seq

            return in_transaction(db, add, write=True)

        allocated = await self._run(f"append to {quote(conversation_id)}", work)
        if allocated is None:
            raise ConversationNotFound(conversation_id)
        if allocated is False:
            raise TurnAlreadyRecorded(conversation_id, request_id)
        assert not isinstance(allocated, bool)
        base, summary_seq = allocated
        return appended(
            messages,
            counts,
            base=base,
            stamp=stamp,
            request_id=request_id,
            summary=summary,
            summary_seq=summary_seq,
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_on_thread(self._executor, self._db)


def _turn_recorded(db: sqlite3.Connection, conversation_id: str, request_id: str) -> bool:
    """Whether a turn with `request_id` is already in the conversation."""
    row = db.execute(
        "SELECT 1 FROM messages WHERE conversation_id = ? AND request_id = ? LIMIT 1",
        (conversation_id, request_id),
    ).fetchone()
    return row is not None


def _insert_summary(
    db: sqlite3.Connection, conversation_id: str, summary: SummaryRecord, seq: int, stamp: int
) -> None:
    """Store `summary` at `seq` and mark each message it replaces."""
    _insert_message(
        db, conversation_id, seq, summary.message, summary.tokens, stamp, summary.replaces
    )
    db.execute(
        "UPDATE messages SET summarized_by = ? WHERE conversation_id = ?"
        f" AND seq IN ({','.join('?' * len(summary.replaces))})",
        (seq, conversation_id, *summary.replaces),
    )


def _summary_applies(
    db: sqlite3.Connection, conversation_id: str, summary: SummaryRecord, base: int
) -> bool:
    if not summary.replaces:
        return False
    rows = db.execute(
        "SELECT seq, summarized_by FROM messages WHERE conversation_id = ?"
        f" AND seq IN ({','.join('?' * len(summary.replaces))})",
        (conversation_id, *summary.replaces),
    ).fetchall()
    return summary_applies(summary, base, {int(seq): by for seq, by in rows})


def _conversation(
    conversation_id: str, head: Sequence[Any], messages: builtins.list[StoredMessage]
) -> Conversation:
    created_us, updated_us, metadata, message_count = head
    try:
        return Conversation(
            id=conversation_id,
            created_at=from_us(int(created_us)),
            updated_at=from_us(int(updated_us)),
            metadata=metadata_from_json(metadata),
            messages=tuple(messages),
            message_count=int(message_count),
        )
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise _Corrupt(f"conversation {quote(conversation_id)}: {exc}") from exc


def _prepare(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA foreign_keys=ON")
    _migrate(db)


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the file to the current schema, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        # Read under the write lock: a version read before it can be stale when another
        # process migrates the same file first, and its ALTER TABLE would then run twice.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, *_MIGRATIONS, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"unknown schema version {version}")
        if version:
            for step in range(version, _SCHEMA_VERSION):
                db.execute(_MIGRATIONS[step])
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
