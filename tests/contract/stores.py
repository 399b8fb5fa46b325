"""The job store backends every store contract test runs on: one entry per backend in
``STORES``.

A :class:`StoreBackend` opens stores on one fresh database (each test has its own: a file,
or a PostgreSQL database on the session's server), opens it again to show what survives a
restart, and runs raw SQL beside the store to look at the rows it wrote.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from requester.store import JobStore
from tests.support.postgres import PostgresServer


@dataclass
class StoreBackend:
    name: str
    target: str
    _sql: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
    _opened: list[JobStore] = field(default_factory=list)

    def open(self, **options: Any) -> JobStore:
        """A store on this backend's database (closed when the test ends, if still open)."""
        store = JobStore(self.target, **options)
        self._opened.append(store)
        return store

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``query`` (``?`` placeholders) on its own connection, committed; its rows."""
        return self._sql(query, params)

    def close(self) -> None:
        for store in self._opened:
            store.close()


StoreFactory = Callable[[pytest.FixtureRequest], AbstractContextManager[StoreBackend]]


@contextmanager
def sqlite_store(request: pytest.FixtureRequest) -> Iterator[StoreBackend]:
    path = request.getfixturevalue("tmp_path") / "requester" / "jobs.db"

    def run(query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(path)) as conn, conn:
            return list(conn.execute(query, params).fetchall())

    backend = StoreBackend("sqlite", str(path), run)
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def postgresql_store(request: pytest.FixtureRequest) -> Iterator[StoreBackend]:
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()

    def run(query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(query.replace("?", "%s"), tuple(params))
            return list(cursor.fetchall()) if cursor.description else []

    backend = StoreBackend("postgresql", url, run)
    try:
        yield backend
    finally:
        backend.close()


STORES: dict[str, StoreFactory] = {
    "sqlite": sqlite_store,
    "postgresql": postgresql_store,
}
