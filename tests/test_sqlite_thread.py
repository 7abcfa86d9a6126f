"""open_on_thread: how both SQLite stores open their database."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from modelrouter_server.errors import StoreError
from modelrouter_server.sqlite_thread import open_on_thread


def _create_table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE t (x)")


async def test_opens_in_wal_mode_after_preparing_the_schema(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    executor, db = await open_on_thread(
        path,
        what="test db",
        thread_name="sqlite-test",
        busy_timeout_s=1.0,
        prepare=_create_table,
    )
    try:

        def mode() -> str:
            return str(db.execute("PRAGMA journal_mode").fetchone()[0])

        assert await asyncio.wrap_future(executor.submit(mode)) == "wal"
    finally:
        await asyncio.wrap_future(executor.submit(db.close))
        executor.shutdown()
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)


async def test_a_sqlite_failure_is_a_store_error_naming_the_database(tmp_path: Path) -> None:
    def prepare(db: sqlite3.Connection) -> None:
        db.execute("NOT SQL")

    with pytest.raises(StoreError, match=r"^test db .*a\.db: cannot open: "):
        await open_on_thread(
            str(tmp_path / "a.db"),
            what="test db",
            thread_name="sqlite-test",
            busy_timeout_s=1.0,
            prepare=prepare,
        )


async def test_a_cancelled_open_closes_the_connection_and_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    entered, release = threading.Event(), threading.Event()

    def prepare(db: sqlite3.Connection) -> None:
        _create_table(db)  # a write: the -wal file exists from here
        entered.set()
        release.wait()

    opening = asyncio.create_task(
        open_on_thread(
            str(path),
            what="test db",
            thread_name="sqlite-cancelled",
            busy_timeout_s=1.0,
            prepare=prepare,
        )
    )
    await asyncio.to_thread(entered.wait)
    wal = Path(f"{path}-wal")
    assert await asyncio.to_thread(wal.exists)  # the connection is open, in WAL mode
    (worker,) = [t for t in threading.enumerate() if t.name.startswith("sqlite-cancelled")]
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    release.set()
    await asyncio.to_thread(worker.join)  # the executor was shut down: its thread ends
    # The last connection to a WAL database removes its -wal file when it closes.
    assert not await asyncio.to_thread(wal.exists)
