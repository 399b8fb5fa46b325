"""The SQL that writes job, execution and history rows, and the models read back from rows.

Written once for every backend: ``?`` placeholders (the PostgreSQL connection translates
them) and nothing but standard SQL. A taken ID surfaces as the backend's integrity error,
which the store turns into a :class:`ValidationError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocol.bookkeeping import Queueing, Verdict
from protocol.execution import Execution
from protocol.history import HistoryRow
from protocol.job import Job
from protocol.wire import STORED
from requester.store.database import Connection


def insert_job(conn: Connection, job: Job) -> None:
    conn.execute(
        "INSERT INTO jobs (id, namespace, name, state, created_ns, modified_ns, json,"
        " queued_since_ns, round_ns, prev_round_ns, retries)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (job.id, job.namespace, job.name, job.state.state_type.value, job.create_time,
         job.modify_time, job.model_dump_json(by_alias=True), *_queueing(job.queueing)),
    )  # fmt: skip


def update_job(conn: Connection, job: Job) -> None:
    conn.execute(
        "UPDATE jobs SET state = ?, modified_ns = ?, json = ?, queued_since_ns = ?, round_ns = ?,"
        " prev_round_ns = ?, retries = ? WHERE id = ?",
        (job.state.state_type.value, job.modify_time, job.model_dump_json(by_alias=True),
         *_queueing(job.queueing), job.id),
    )  # fmt: skip


def insert_execution(conn: Connection, execution: Execution) -> None:
    """Insert a new execution row, without its Job."""
    conn.execute(
        "INSERT INTO executions (id, job_id, node_id, state, desired_state, created_ns,"
        " modified_ns, json, retryable, never_ran, busy, mismatched)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (execution.id, execution.job_id, execution.node_id, int(execution.state),
         int(execution.desired_state.state_type), execution.create_time,
         execution.modify_time, _execution_json(execution), *_verdict(execution.verdict)),
    )  # fmt: skip


def update_execution(conn: Connection, execution: Execution) -> None:
    conn.execute(
        "UPDATE executions SET state = ?, desired_state = ?, modified_ns = ?, json = ?,"
        " retryable = ?, never_ran = ?, busy = ?, mismatched = ? WHERE id = ?",
        (int(execution.state), int(execution.desired_state.state_type), execution.modify_time,
         _execution_json(execution), *_verdict(execution.verdict), execution.id),
    )  # fmt: skip


def insert_history(conn: Connection, row: HistoryRow) -> None:
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
    """A Job from a row of :data:`~requester.store.schema.JOB_COLUMNS`."""
    job = Job.model_validate_json(row[0], context=STORED)
    since_ns, round_ns, prev_round_ns, retries = row[1:5]
    if since_ns or round_ns or prev_round_ns or retries:
        return job.with_queueing(Queueing(since_ns, round_ns, prev_round_ns, retries))
    return job


def execution_from_row(row: Sequence[Any]) -> Execution:
    """An Execution from a row of :data:`~requester.store.schema.EXECUTION_COLUMNS`."""
    execution = Execution.model_validate_json(row[0], context=STORED)
    retryable, never_ran, busy, mismatched = row[1:5]
    if retryable or never_ran or busy or mismatched:
        flags = (bool(retryable), bool(never_ran), bool(busy), bool(mismatched))
        return execution.with_verdict(Verdict(*flags))
    return execution
