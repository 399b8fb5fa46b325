"""The job store in one SQLite file (WAL), or in memory (``":memory:"``).

The schema version lives in ``PRAGMA user_version``. One writer connection serves every
thread under the store's lock (``BEGIN IMMEDIATE`` takes the file's write lock, so no other
process writes meanwhile); on a file each thread reads through its own connection without
that lock, since WAL readers see the last commit and block nobody.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from requester.store.database import Connection, Database
from requester.store.errors import StoreError
from requester.store.schema import MIGRATIONS, SCHEMA_VERSION, newer_schema_problem

log = logging.getLogger("bacalao.store")

BUSY_TIMEOUT_MS = 5_000
MEMORY = ":memory:"


def connect(path: str | Path, migrate_schema: bool = True) -> sqlite3.Connection:
    """Open ``path`` (``":memory:"`` for a private in-memory store) and bring its schema up
    (readers opened after the writer skip that)."""
    target = str(path)
    if target != MEMORY and not target.startswith("file:"):
        Path(target).expanduser().parent.mkdir(parents=True, exist_ok=True)
        target = str(Path(target).expanduser())
    conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if migrate_schema:
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Apply every migration newer than the file's ``user_version``, one transaction each."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise StoreError(newer_schema_problem(current))
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for statement in MIGRATIONS[version - 1].sqlite:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
        log.info("event=store_migrated backend=sqlite schema_version=%d", version)


class SqliteDatabase(Database):
    integrity_errors = (sqlite3.IntegrityError,)
    labels_sql = "json_extract(json, '$.Labels')"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = str(path)
        try:
            self._conn = connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite file: {exc}") from None
        self._statements = 0
        self._conn.set_trace_callback(self._count_statement)
        self._readers = threading.local()
        self._readers_lock = threading.Lock()
        self._reader_conns: list[sqlite3.Connection] = []
        self._closed = False

    @property
    def writer(self) -> sqlite3.Connection:
        return self._conn

    @property
    def statements(self) -> int:
        return self._statements

    @property
    def rows_changed(self) -> int:
        return self._conn.total_changes

    def close(self) -> None:
        with self.lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                with self._readers_lock:
                    for conn in self._reader_conns:
                        conn.close()

    def _reads_share_writer(self) -> bool:
        return self.path == MEMORY

    @contextmanager
    def _reader(self) -> Iterator[Connection]:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            with self._readers_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the job store is closed")
                conn = connect(self.path, migrate_schema=False)
                self._reader_conns.append(conn)
            self._readers.conn = conn
        yield conn

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            yield

    def _begin_snapshot(self, conn: Connection) -> None:
        conn.execute("BEGIN")

    def _count_statement(self, _statement: str) -> None:
        self._statements += 1
