"""Which database a store target names: a path or ``sqlite://`` URL is SQLite (the default),
a ``postgresql://`` URL is PostgreSQL. Backends are imported only when named, so SQLite
needs no PostgreSQL driver."""

from __future__ import annotations

from pathlib import Path

from requester.store.database import Database
from requester.store.errors import StoreError
from requester.store.sqlite import MEMORY, SqliteDatabase

POSTGRESQL_SCHEMES = ("postgresql", "postgres")
SQLITE_SCHEME = "sqlite"


def open_database(target: str | Path) -> Database:
    """The database ``target`` names, opened and migrated; :class:`StoreError` when it names
    none or cannot be opened."""
    check_target(target)
    if isinstance(target, Path):
        return SqliteDatabase(target)
    scheme, found, rest = target.partition("://")
    scheme = scheme.lower()
    if not found or scheme == "file":
        return SqliteDatabase(target)  # a path (or sqlite3's own file: URI)
    if scheme in POSTGRESQL_SCHEMES:
        from requester.store.postgresql import PostgresDatabase

        return PostgresDatabase(target)
    return SqliteDatabase(sqlite_path(rest))


def check_target(target: str | Path) -> None:
    """:class:`StoreError` if ``target`` names no store, without opening it."""
    if isinstance(target, Path):
        return
    scheme, found, rest = target.partition("://")
    scheme = scheme.lower()
    if not found or scheme == "file":
        return
    if scheme in POSTGRESQL_SCHEMES:
        from requester.store.postgresql import conninfo

        conninfo(target)
        return
    if scheme == SQLITE_SCHEME:
        sqlite_path(rest)
        return
    known = ", ".join(f"{name}://" for name in (SQLITE_SCHEME, *POSTGRESQL_SCHEMES))
    raise StoreError(f"unknown store scheme {scheme!r} (known: {known}, or a path)")


def sqlite_path(rest: str) -> str:
    """The file of ``sqlite://<rest>``: ``sqlite:///jobs.db`` is relative,
    ``sqlite:////var/jobs.db`` absolute, ``sqlite://`` and ``sqlite:///:memory:`` in memory."""
    if rest in ("", "/", f"/{MEMORY}"):
        return MEMORY
    if not rest.startswith("/"):
        raise StoreError(
            f"sqlite://{rest} names a host; write sqlite:///relative.db or sqlite:////abs.db"
        )
    return rest[1:]


def describe(target: str | Path) -> str:
    """The target without its password, for logs and messages."""
    text = str(target)
    scheme, found, rest = text.partition("://")
    if not found or "@" not in rest.split("/", 1)[0]:
        return text
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else text
