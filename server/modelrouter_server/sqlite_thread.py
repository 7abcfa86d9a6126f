"""One SQLite connection on a thread of its own: how both SQLite stores (conversations and
the tenant ledger) open, use and close their database.

sqlite3 blocks, so every call runs on a one-thread executor; the connection is made there
too, since a connection may only be used on the thread that made it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from modelrouter_server.errors import StoreError

T = TypeVar("T")


async def open_on_thread(
    path: str,
    *,
    what: str,
    thread_name: str,
    busy_timeout_s: float,
    prepare: Callable[[sqlite3.Connection], None],
) -> tuple[ThreadPoolExecutor, sqlite3.Connection]:
    """Connect to `path` on a new one-thread executor, switch to WAL (checked: a file system
    that refuses it is an error, not a silent fallback to a rollback journal), then
    `prepare` the schema. Returns the executor every later call must run on, and the
    connection. `StoreError` ("`what` `path`: cannot open: ...") when SQLite fails; on any
    failure, a cancel included, the executor is shut down and a connection it made closed.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if path != ":memory:" and str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
            db.execute("PRAGMA synchronous=NORMAL")
            prepare(db)
        except BaseException:
            db.close()
            raise
        return db

    opened = executor.submit(connect)
    try:
        db = await asyncio.wrap_future(opened)
    except BaseException as exc:
        # Cancelled while `connect` ran: it still finishes on its thread; the close queued
        # behind it (one thread: in order) releases what it made.
        executor.submit(_close_opened, opened)
        executor.shutdown(wait=False)
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{what} {path}: cannot open: {exc}") from exc
        raise
    return executor, db


def _close_opened(opened: Future[sqlite3.Connection]) -> None:
    if not opened.cancelled() and opened.exception() is None:
        opened.result().close()


def in_transaction(db: sqlite3.Connection, work: Callable[[], T], *, write: bool) -> T:
    """`work()` in one transaction (on the connection's thread): committed when it returns,
    rolled back when it raises."""
    # IMMEDIATE takes the write lock up front: values read inside are not stale when written.
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = work()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result


async def close_on_thread(executor: ThreadPoolExecutor, db: sqlite3.Connection) -> None:
    """Close a connection `open_on_thread` made, on its thread, then let the thread go."""
    try:
        await asyncio.get_running_loop().run_in_executor(executor, db.close)
    finally:
        executor.shutdown(wait=False)
