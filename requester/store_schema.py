"""The job store's SQLite layer: schema, migrations, the SQL that reads and writes rows, and
the opaque page tokens of ``list_jobs``.

The schema version lives in ``PRAGMA user_version``; opening a file applies the migrations it
has not seen yet, each in its own transaction, and refuses a file written by a newer bacalao.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.bookkeeping import Queueing, Verdict
from protocol.errors import BacalaoError, ValidationError
from protocol.execution import Execution
from protocol.history import HistoryRow
from protocol.job import Job
from protocol.wire import STORED

log = logging.getLogger("bacalao.store")

BUSY_TIMEOUT_MS = 5_000

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            modified_ns INTEGER NOT NULL,
            json TEXT NOT NULL
        )""",
        "CREATE INDEX jobs_namespace_created ON jobs (namespace, created_ns, id)",
        "CREATE INDEX jobs_state ON jobs (state, created_ns)",
        """CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (id),
            node_id TEXT NOT NULL,
            state INTEGER NOT NULL,
            desired_state INTEGER NOT NULL,
            created_ns INTEGER NOT NULL,
            modified_ns INTEGER NOT NULL,
            json TEXT NOT NULL
        )""",
        "CREATE INDEX executions_job_id ON executions (job_id, created_ns)",
        """CREATE TABLE history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL,
            execution_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            type TEXT NOT NULL,
            time_ns INTEGER NOT NULL,
            json TEXT NOT NULL
        )""",
        "CREATE INDEX history_job_id ON history (job_id, id)",
    ),
    # 2: the requester's audit reads live executions across jobs every few seconds.
    ("CREATE INDEX executions_state ON executions (state)",),
    # 3: the scheduler's bookkeeping moves from strings in the public State.Details to typed
    # columns (protocol.bookkeeping); what older versions wrote there is carried over.
    (
        "ALTER TABLE jobs ADD COLUMN queued_since_ns INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN round_ns INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN prev_round_ns INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0",
        """UPDATE jobs SET
            queued_since_ns = CAST(coalesce(json_extract(json, '$.State.Details.QueuedSince'), 0)
                AS INTEGER),
            round_ns = CAST(coalesce(json_extract(json, '$.State.Details.Round'), 0) AS INTEGER),
            prev_round_ns = CAST(coalesce(json_extract(json, '$.State.Details.PrevRound'), 0)
                AS INTEGER),
            retries = CAST(coalesce(json_extract(json, '$.State.Details.Retries'), 0) AS INTEGER),
            json = json_remove(json, '$.State.Details.QueuedSince', '$.State.Details.Round',
                '$.State.Details.PrevRound', '$.State.Details.Retries')
        WHERE json_extract(json, '$.State.Details') IS NOT NULL""",
        "ALTER TABLE executions ADD COLUMN retryable INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE executions ADD COLUMN never_ran INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE executions ADD COLUMN busy INTEGER NOT NULL DEFAULT 0",
        """UPDATE executions SET
            retryable = coalesce(json_extract(json, '$.ComputeState.Details.Retryable') = 'true',
                0),
            never_ran = coalesce(json_extract(json, '$.ComputeState.Details.NeverRan') = 'true',
                0),
            busy = coalesce(json_extract(json, '$.ComputeState.Details.Busy') = 'true', 0),
            json = json_remove(json, '$.ComputeState.Details.Retryable',
                '$.ComputeState.Details.NeverRan', '$.ComputeState.Details.Busy')
        WHERE json_extract(json, '$.ComputeState.Details') IS NOT NULL""",
    ),
    # 4: each node's reputation (requester/reputation.py), kept across restarts.
    (
        """CREATE TABLE reputations (
            node_id TEXT PRIMARY KEY,
            completed REAL NOT NULL,
            failed REAL NOT NULL,
            updated_ns INTEGER NOT NULL
        )""",
    ),
    # 5: a verified job's executions whose result lost the vote (requester/verifier.py).
    ("ALTER TABLE executions ADD COLUMN mismatched INTEGER NOT NULL DEFAULT 0",),
)
# What a Job or an Execution is read from: its JSON and its bookkeeping columns.
JOB_COLUMNS = "json, queued_since_ns, round_ns, prev_round_ns, retries"
EXECUTION_COLUMNS = "json, retryable, never_ran, busy, mismatched"
SCHEMA_VERSION = len(MIGRATIONS)

ORDER_COLUMNS = {
    "created_at": "created_ns",
    "modified_at": "modified_ns",
    "id": "id",
    "name": "name",
    "state": "state",
}
_INTEGER_ORDERS = frozenset({"created_at", "modified_at"})
_INT64 = range(-(2**63), 2**63)


def connect(path: str | Path, migrate_schema: bool = True) -> sqlite3.Connection:
    """Open ``path`` (``":memory:"`` for a private in-memory store) and bring its schema up
    (readers opened after the writer skip that)."""
    target = str(path)
    if target != ":memory:" and not target.startswith("file:"):
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
        raise BacalaoError(
            f"job store schema version {current} is newer than this bacalao understands "
            f"({SCHEMA_VERSION}); upgrade bacalao or use another data dir"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
        log.info("event=store_migrated schema_version=%d", version)


@dataclass(frozen=True)
class PageToken:
    """Where the next page starts: the sort key and ID of the last row already returned."""

    order_by: str
    reverse: bool
    last_key: str | int
    last_id: str

    def encode(self) -> str:
        raw = json.dumps([self.order_by, self.reverse, self.last_key, self.last_id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, *, order_by: str, reverse: bool) -> PageToken:
        try:
            padded = token + "=" * (-len(token) % 4)
            fields = json.loads(base64.urlsafe_b64decode(padded.encode()))
            saved_order, saved_reverse, last_key, last_id = fields
        except (ValueError, TypeError, binascii.Error):
            raise ValidationError("next_token", "is not a token this server issued") from None
        if not _fits_order(last_key, str(saved_order)) or not _is_text(last_id):
            raise ValidationError("next_token", "is not a token this server issued")
        if saved_order != order_by or saved_reverse != reverse:
            raise ValidationError(
                "next_token", "was issued for another ordering; repeat order_by and reverse"
            )
        return cls(order_by, reverse, last_key, last_id)


def _fits_order(key: object, order_by: str) -> bool:
    """A sort key SQLite can bind and compare with the ordering's column."""
    if order_by in _INTEGER_ORDERS:
        return isinstance(key, int) and not isinstance(key, bool) and key in _INT64
    return _is_text(key)


def _is_text(value: object) -> bool:
    """A str that SQLite can bind (UTF-8: no unpaired surrogates)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def insert_job(conn: sqlite3.Connection, job: Job) -> None:
    """Insert a new job row; a taken ID raises :class:`ValidationError` on ``ID``."""
    try:
        conn.execute(
            "INSERT INTO jobs (id, namespace, name, state, created_ns, modified_ns, json,"
            " queued_since_ns, round_ns, prev_round_ns, retries)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.namespace, job.name, job.state.state_type.value, job.create_time,
             job.modify_time, job.model_dump_json(by_alias=True), *_queueing(job.queueing)),
        )  # fmt: skip
    except sqlite3.IntegrityError:
        raise ValidationError("ID", f"job {job.id} already exists") from None


def update_job(conn: sqlite3.Connection, job: Job) -> None:
    conn.execute(
        "UPDATE jobs SET state = ?, modified_ns = ?, json = ?, queued_since_ns = ?, round_ns = ?,"
        " prev_round_ns = ?, retries = ? WHERE id = ?",
        (job.state.state_type.value, job.modify_time, job.model_dump_json(by_alias=True),
         *_queueing(job.queueing), job.id),
    )  # fmt: skip


def insert_execution(conn: sqlite3.Connection, execution: Execution) -> None:
    """Insert a new execution row, without its Job; a taken ID raises on ``ID``."""
    try:
        conn.execute(
            "INSERT INTO executions (id, job_id, node_id, state, desired_state, created_ns,"
            " modified_ns, json, retryable, never_ran, busy, mismatched)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (execution.id, execution.job_id, execution.node_id, int(execution.state),
             int(execution.desired_state.state_type), execution.create_time,
             execution.modify_time, _execution_json(execution), *_verdict(execution.verdict)),
        )  # fmt: skip
    except sqlite3.IntegrityError:
        raise ValidationError("ID", f"execution {execution.id} already exists") from None


def update_execution(conn: sqlite3.Connection, execution: Execution) -> None:
    conn.execute(
        "UPDATE executions SET state = ?, desired_state = ?, modified_ns = ?, json = ?,"
        " retryable = ?, never_ran = ?, busy = ?, mismatched = ? WHERE id = ?",
        (int(execution.state), int(execution.desired_state.state_type), execution.modify_time,
         _execution_json(execution), *_verdict(execution.verdict), execution.id),
    )  # fmt: skip


def insert_history(conn: sqlite3.Connection, row: HistoryRow) -> None:
    conn.execute(
        "INSERT INTO history (job_id, execution_id, node_id, type, time_ns, json)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (row.job_id, row.execution_id, row.node_id, row.type.value, row.time_ns, row.json),
    )


def _execution_json(execution: Execution) -> str:
    return execution.model_dump_json(by_alias=True, exclude={"job"})


def _queueing(queueing: Queueing) -> tuple[int, int, int, int]:
    return queueing.since_ns, queueing.round_ns, queueing.prev_round_ns, queueing.retries


def _verdict(verdict: Verdict) -> tuple[int, int, int, int]:
    return (
        int(verdict.retryable),
        int(verdict.never_ran),
        int(verdict.busy),
        int(verdict.mismatched),
    )


def job_from_row(row: Sequence[Any]) -> Job:
    """A Job from a row of :data:`JOB_COLUMNS`."""
    job = Job.model_validate_json(row[0], context=STORED)
    since_ns, round_ns, prev_round_ns, retries = row[1:5]
    if since_ns or round_ns or prev_round_ns or retries:
        return job.with_queueing(Queueing(since_ns, round_ns, prev_round_ns, retries))
    return job


def execution_from_row(row: Sequence[Any]) -> Execution:
    """An Execution from a row of :data:`EXECUTION_COLUMNS`."""
    execution = Execution.model_validate_json(row[0], context=STORED)
    retryable, never_ran, busy, mismatched = row[1:5]
    if retryable or never_ran or busy or mismatched:
        flags = (bool(retryable), bool(never_ran), bool(busy), bool(mismatched))
        return execution.with_verdict(Verdict(*flags))
    return execution


def jobs_page_query(
    *,
    column: str,
    namespace: str | None,
    after: PageToken | None,
    reverse: bool,
    limit: int,
) -> tuple[str, list[str | int]]:
    """SQL for up to ``limit`` jobs after ``after``, keyset-paginated on ``(column, id)``.

    Rows are ``(sort key, id, labels JSON or NULL, job JSON)``.
    """
    if column not in ORDER_COLUMNS.values():
        raise ValueError(f"not an orderable column: {column!r}")
    where: list[str] = []
    params: list[str | int] = []
    if namespace:
        where.append("namespace = ?")
        params.append(namespace)
    if after is not None:
        where.append(f"({column}, id) {'<' if reverse else '>'} (?, ?)")
        params += [after.last_key, after.last_id]
    direction = "DESC" if reverse else "ASC"
    sql = (
        f"SELECT {column}, id, json_extract(json, '$.Labels'), json FROM jobs"  # noqa: S608
        f"{' WHERE ' + ' AND '.join(where) if where else ''}"
        f" ORDER BY {column} {direction}, id {direction} LIMIT ?"
    )
    return sql, [*params, limit]


def history_query(
    job_id: str,
    *,
    types: tuple[str, ...],
    execution_id: str | None,
    node_id: str | None,
    since_ns: int,
) -> tuple[str, list[str | int]]:
    where = ["job_id = ?", f"type IN ({', '.join('?' for _ in types)})", "time_ns >= ?"]
    params: list[str | int] = [job_id, *types, since_ns]
    if execution_id:
        where.append("execution_id = ?")
        params.append(execution_id)
    if node_id:
        where.append("node_id = ?")
        params.append(node_id)
    return f"SELECT json FROM history WHERE {' AND '.join(where)} ORDER BY id", params  # noqa: S608
