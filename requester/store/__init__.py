"""The requester's job store (one interface, :class:`Store`; SQLite by default, PostgreSQL to
share it between requesters).

interface   the Protocol code that uses a store types against
jobstore    JobStore: jobs and history; executions (compare-and-set), core (transactions,
            row cache, clock) under it
database    the transaction discipline every backend shares; sqlite, postgresql: backends
leases      which requester follows which job (owner, expires_at_ns)
targets     which backend a path or URL names (``--store``)
schema      the tables: one list of versions, written per dialect
rows, paging, cache   row SQL and models; page tokens and label selectors; the row cache
"""

from requester.store.cache import NoCache, RowCache
from requester.store.core import ACTIVE_JOB_STATES
from requester.store.database import Database
from requester.store.errors import StoreError
from requester.store.interface import Store
from requester.store.jobstore import (
    DEFAULT_LIMIT,
    HISTORY_EVENT_TYPES,
    MIN_PREFIX_LENGTH,
    JobStore,
)
from requester.store.leases import Leases
from requester.store.paging import ORDER_COLUMNS, PageToken
from requester.store.schema import (
    EXECUTION_COLUMNS,
    JOB_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
)
from requester.store.targets import check_target, describe, open_database

__all__ = [
    "ACTIVE_JOB_STATES",
    "DEFAULT_LIMIT",
    "EXECUTION_COLUMNS",
    "HISTORY_EVENT_TYPES",
    "JOB_COLUMNS",
    "MIGRATIONS",
    "MIN_PREFIX_LENGTH",
    "ORDER_COLUMNS",
    "SCHEMA_VERSION",
    "Database",
    "JobStore",
    "Leases",
    "Migration",
    "NoCache",
    "PageToken",
    "RowCache",
    "Store",
    "StoreError",
    "check_target",
    "describe",
    "open_database",
]
