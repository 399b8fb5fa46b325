"""The job store in PostgreSQL (psycopg 3), which several requesters may share.

The schema version is the highest row of ``schema_migrations``; migrations run under an
advisory lock, so requesters starting together apply each version once. Writes go through
one writer connection per process (the store's lock serialises this process's writes, as on
SQLite); a change reads its row ``FOR UPDATE``, so a compare-and-set holds across processes
too. Reads go through a pool, in autocommit, or in one REPEATABLE READ transaction where a
read must see one commit throughout (a page of ``list_jobs``). Rows are not cached: other
processes may change them.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from requester.store.database import Database
from requester.store.errors import StoreError
from requester.store.schema import MIGRATIONS, SCHEMA_VERSION, newer_schema_problem

log = logging.getLogger("bacalao.store")

CONNECT_TIMEOUT_S = 5
POOL_SIZE = 8
MIGRATION_LOCK = 0x62616361  # "baca": the advisory lock the schema's migrations run under


@functools.lru_cache(maxsize=512)
def _translated(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` escaped)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection that runs the store's ``?`` SQL, counting what it runs."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.statements = 0
        self.rows_changed = 0

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        self.statements += 1
        cursor = self.raw.execute(_translated(sql), tuple(parameters))
        if cursor.rowcount > 0 and sql.lstrip()[:6].upper() != "SELECT":
            self.rows_changed += cursor.rowcount
        return cursor


def conninfo(url: str) -> str:
    """``url`` checked, with a connect timeout unless it sets one; :class:`StoreError` if it
    is no PostgreSQL URL."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"not a PostgreSQL URL: {_first_line(exc)}") from None
    ports = str(params.get("port") or "").split(",")
    bad = [port for port in ports if port and not port.isdigit()]
    if bad:
        raise StoreError(f"not a PostgreSQL URL: port {bad[0]!r} is not a number")
    if "connect_timeout" in params:
        return url
    return make_conninfo(url, connect_timeout=CONNECT_TIMEOUT_S)


def connect(info: str) -> psycopg.Connection[Any]:
    """An autocommit connection; :class:`StoreError` saying why there is none."""
    try:
        return psycopg.Connection.connect(info, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach PostgreSQL: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(conn: psycopg.Connection[Any]) -> None:
    """Apply every migration the database has not seen, one transaction each, under an
    advisory lock (a second requester starting meanwhile waits, then finds them done)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StoreError(newer_schema_problem(current))
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with conn.transaction():
                for statement in MIGRATIONS[version - 1].postgresql:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            log.info("event=store_migrated backend=postgresql schema_version=%d", version)
    finally:
        if not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


class PostgresDatabase(Database):
    integrity_errors = (psycopg.errors.UniqueViolation,)
    # json, not jsonb: jsonb refuses the \u0000 a job's JSON may hold
    labels_sql = "(json::json -> 'Labels')::text"
    lock_sql = " FOR UPDATE"
    shared = True

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        super().__init__()
        self._conninfo = conninfo(url)
        raw = connect(self._conninfo)
        try:
            migrate(raw)
        except BaseException:
            raw.close()
            raise
        self._writer = PgConnection(raw)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=pool_size,
            open=True,
            name="bacalao-store",
        )
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def writer(self) -> PgConnection:
        return self._writer

    @property
    def statements(self) -> int:
        return self._writer.statements

    @property
    def rows_changed(self) -> int:
        return self._writer.rows_changed

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        with self.lock:
            self._writer.raw.close()
        self._pool.close()

    @contextmanager
    def _reader(self) -> Iterator[PgConnection]:
        with self._pool.connection() as raw:
            yield PgConnection(raw)

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        if self._writer.raw.broken and not self._closed:
            log.warning("event=store_reconnect backend=postgresql")
            self._writer.raw = connect(self._conninfo)
        self._writer.execute("BEGIN")
        try:
            yield
        except BaseException:
            if not self._writer.raw.broken:
                self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")

    def _begin_snapshot(self, conn: Any) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
