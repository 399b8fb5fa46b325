"""What the job store needs from a database: connections to read and write with, and one
transaction discipline for every backend.

Writes go through one writer connection under a lock, one transaction each (a savepoint of
the open :meth:`Database.batch` when this thread has one), so a process never races itself;
what guards a database that several processes write (PostgreSQL) is the row lock each
compare-and-set takes (:attr:`Database.lock_sql`). Reads go through other connections, so a
write in progress never holds them up.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """A DB-API connection that runs SQL with ``?`` placeholders (sqlite3's, or an adapter)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...


class Database(ABC):
    """One store's database. A backend supplies its writer, its readers and its SQL."""

    #: the errors a taken primary key raises
    integrity_errors: tuple[type[Exception], ...] = ()
    #: SQL for the text of a job row's Labels (JSON), NULL when it has none
    labels_sql: str = ""
    #: appended to the read of a row about to be changed, to lock it until the commit
    lock_sql: str = ""
    #: other processes may write it too: this process must not cache rows
    shared: bool = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._batch_owner: int | None = None  # the thread whose batch() is open
        self.transactions = 0  # write transactions committed (or tried), for the bench
        self._timers: list[Callable[[float], None]] = []

    # -- what a backend supplies ------------------------------------------------------------

    @property
    @abstractmethod
    def writer(self) -> Connection:
        """The connection every write goes through."""

    @abstractmethod
    def _reader(self) -> AbstractContextManager[Connection]:
        """A connection to read with while the block runs (not the writer)."""

    @abstractmethod
    def _write_transaction(self) -> AbstractContextManager[None]:
        """BEGIN on the writer; COMMIT when the block ends, ROLLBACK if it raises."""

    @abstractmethod
    def _begin_snapshot(self, conn: Connection) -> None:
        """Start a read transaction whose reads all see one commit."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def statements(self) -> int:
        """Statements run on the writer connection, reads included."""

    @property
    @abstractmethod
    def rows_changed(self) -> int: ...

    def _reads_share_writer(self) -> bool:
        """Whether every read goes through the writer, under the lock (SQLite in memory)."""
        return False

    # -- the discipline ---------------------------------------------------------------------

    def batch_is_mine(self) -> bool:
        return self._batch_owner == threading.get_ident()

    def is_writer(self, conn: Connection) -> bool:
        return conn is self.writer

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection to read with: this thread's batch's, or a reader."""
        if self.batch_is_mine() or self._reads_share_writer():
            with self.lock:
                yield self.writer
            return
        with self._reader() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A connection whose reads, until the block ends, all see the same commit."""
        with self.read() as conn:
            if self.is_writer(conn):
                yield conn
                return
            self._begin_snapshot(conn)
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction, or a savepoint of this thread's batch."""
        with self.lock:
            if self.batch_is_mine():
                self.writer.execute("SAVEPOINT change")
                try:
                    yield self.writer
                except BaseException:
                    self.writer.execute("ROLLBACK TO change")
                    self.writer.execute("RELEASE change")
                    raise
                self.writer.execute("RELEASE change")
                return
            started = time.perf_counter()
            try:
                self.transactions += 1
                with self._write_transaction():
                    yield self.writer
            finally:
                self._timed(started)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One write transaction for every change this thread makes in the block."""
        with self.lock:
            if self._batch_owner is not None:  # nested: the outer batch commits
                yield
                return
            started = time.perf_counter()
            try:
                self.transactions += 1
                with self._write_transaction():
                    self._batch_owner = threading.get_ident()
                    try:
                        yield
                    finally:
                        self._batch_owner = None
            finally:
                self._timed(started)

    def on_transaction(self, timer: Callable[[float], None]) -> None:
        self._timers.append(timer)

    def _timed(self, started: float) -> None:
        seconds = time.perf_counter() - started
        for timer in self._timers:
            timer(seconds)
