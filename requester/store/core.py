"""What every part of the job store shares: its database, its row cache kept in step with
the database's transactions, the clock it stamps rows with, and the rows it loads to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

from protocol.errors import NotFoundError
from protocol.execution import Execution
from protocol.ids import now_ns
from protocol.job import Job, JobStateType
from requester.reputation import Reputation
from requester.store import reputations as reputation_rows
from requester.store import rows
from requester.store.cache import NoCache, RowCache
from requester.store.database import Connection, Database
from requester.store.schema import EXECUTION_COLUMNS, JOB_COLUMNS

T = TypeVar("T")

ACTIVE_JOB_STATES = (JobStateType.PENDING, JobStateType.QUEUED, JobStateType.RUNNING)


class StoreCore:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._cache = NoCache() if database.shared else RowCache()
        self._last_ns = 0
        self._ended_listeners: list[Callable[[Execution], None]] = []
        self._state_listeners: list[Callable[[JobStateType, Job], None]] = []
        self._reputation_listeners: list[Callable[[str, Reputation], None]] = []
        self._reputation_changes: dict[str, list[reputation_rows.Change]] = {}

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def transactions(self) -> int:
        """Write transactions committed (or tried), for the bench."""
        return self._db.transactions

    @property
    def statements(self) -> int:
        """Statements run on the writer connection, reads included."""
        return self._db.statements

    def stats(self) -> dict[str, int]:
        return {
            "Transactions": self._db.transactions,
            "Statements": self._db.statements,
            "RowsChanged": self._db.rows_changed,
            "CachedJobs": len(self._cache),
            "CacheHits": self._cache.hits,
            "CacheMisses": self._cache.misses,
        }

    def on_transaction(self, timer: Callable[[float], None]) -> None:
        """Call ``timer`` with the seconds each write transaction held the writer."""
        self._db.on_transaction(timer)

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.
        Inside :meth:`batch` (same thread) it is a savepoint of the batch's transaction."""
        with self._db.lock:
            if self._db.batch_is_mine():
                with self._db.transaction() as conn, self._cache.change():
                    yield conn
                return
            with self._cache_kept_in_step(), self._db.transaction() as conn:
                yield conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every change this thread makes in the block commits as one transaction (each is a
        savepoint, so a refused change still writes nothing), and this thread's reads see
        them. Other writers wait for the block: keep it short."""
        with self._db.lock:
            if self._db.batch_is_mine():  # nested: the outer batch commits
                yield
                return
            try:
                with self._cache_kept_in_step(), self._db.batch():
                    yield
                    saved = self._write_reputations()
            finally:
                self._reputation_changes.clear()
        self._tell_reputations(saved)

    # -- reputations --------------------------------------------------------------------------

    def reputations(self) -> dict[str, Reputation]:
        """Every node's reputation as last saved."""
        with self._db.read() as conn:
            return reputation_rows.load(conn)

    def change_reputation(self, node_id: str, change: reputation_rows.Change) -> None:
        """Apply ``change`` to the node's stored reputation: at the end of this thread's
        batch if one is under way (see :mod:`requester.store.reputations`), else now. The
        :meth:`on_reputation` listeners hear what was saved once it is committed."""
        with self._db.lock:
            if self._db.batch_is_mine():
                self._reputation_changes.setdefault(node_id, []).append(change)
                return
            self._reputation_changes = {node_id: [change]}
            try:
                with self._db.transaction():
                    saved = self._write_reputations()
            finally:
                self._reputation_changes = {}
        self._tell_reputations(saved)

    def on_reputation(self, listener: Callable[[str, Reputation], None]) -> None:
        """Call ``listener`` with each node's reputation as this store saved it."""
        self._reputation_listeners.append(listener)

    def _write_reputations(self) -> dict[str, Reputation]:
        if not self._reputation_changes:
            return {}
        return reputation_rows.apply(self._db.writer, self._db.lock_sql, self._reputation_changes)

    def _tell_reputations(self, saved: Mapping[str, Reputation]) -> None:
        for node_id, reputation in saved.items():
            for listener in self._reputation_listeners:
                listener(node_id, reputation)

    @contextmanager
    def _cache_kept_in_step(self) -> Iterator[None]:
        """Around a transaction: the cache keeps its changes if it commits, and drops them if
        it (or its COMMIT) fails."""
        try:
            yield
        except BaseException:
            self._cache.rolled_back()
            raise
        self._cache.committed()

    def _cached(self, read: Callable[[RowCache], T | None]) -> T | None:
        """``read`` of the cache, if the writer lock is free (the cache is then what was
        committed) or this thread's; None (read the database) while another thread writes."""
        if not self._db.lock.acquire(blocking=False):
            return None
        try:
            return read(self._cache)
        finally:
            self._db.lock.release()

    def _tick(self) -> int:
        """Now, in Unix nanoseconds, strictly later than any time this store handed out."""
        self._last_ns = max(now_ns(), self._last_ns + 1)
        return self._last_ns

    # -- rows to change ---------------------------------------------------------------------

    def _load_job(self, conn: Connection, job_id: str) -> Job:
        """The job, from the writer's cache or its row (see :meth:`_row`)."""
        if self._db.is_writer(conn) and (cached := self._cache.job(job_id)) is not None:
            return cached
        return rows.job_from_row(self._row(conn, "job", "jobs", JOB_COLUMNS, job_id))

    def _load_execution(self, conn: Connection, execution_id: str) -> Execution:
        """The execution, from the writer's cache or its row (see :meth:`_row`)."""
        if self._db.is_writer(conn) and (cached := self._cache.execution(execution_id)) is not None:
            return cached
        row = self._row(conn, "execution", "executions", EXECUTION_COLUMNS, execution_id)
        return rows.execution_from_row(row)

    def _row(
        self, conn: Connection, noun: str, table: str, columns: str, row_id: str
    ) -> Sequence[Any]:
        """One row by ID; through the writer (its lock held) the row is locked until the
        commit where other processes write too."""
        if "\x00" in row_id:  # no ID holds one, and PostgreSQL cannot even compare it
            raise NotFoundError(f"{noun} {row_id} not found")
        lock = self._db.lock_sql if self._db.is_writer(conn) else ""
        row: Sequence[Any] | None = conn.execute(
            f"SELECT {columns} FROM {table} WHERE id = ?{lock}",  # noqa: S608
            (row_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"{noun} {row_id} not found")
        return row
