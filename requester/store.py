"""The requester's job store: jobs, executions and their history in one SQLite file.

Every state change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) that reads the row,
checks the transition table, writes the row with a bumped ``Revision`` and appends a history
entry, so a crash never leaves a state without its history, and a refused transition writes
nothing. One connection serves all threads, guarded by a lock.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from protocol.bookkeeping import NO_VERDICT, NOT_QUEUED, Queueing, Verdict
from protocol.errors import NotFoundError, StateTransitionError, ValidationError
from protocol.execution import ComputeState, DesiredState, Execution, RunCommandResult
from protocol.history import (
    EXECUTION_CREATED,
    TOPIC_SUBMISSION,
    JobHistory,
    JobHistoryType,
    execution_row,
    job_row,
)
from protocol.ids import now_ns
from protocol.job import Job, JobState, JobStateType, LabelSelectorRequirement, SpecConfig
from protocol.selectors import matches
from protocol.states import (
    ExecutionDesiredStateType,
    ExecutionStateType,
    check_execution_transition,
    check_job_transition,
)
from protocol.wire import STORED
from requester import store_schema as sql
from requester.reputation import Reputation
from requester.store_cache import RowCache
from requester.store_schema import ORDER_COLUMNS, PageToken

log = logging.getLogger("bacalao.store")
T = TypeVar("T")

DEFAULT_LIMIT = 100
SCAN_BATCH = 256  # jobs read per query while a label selector filters them
MIN_PREFIX_LENGTH = 4
ACTIVE_JOB_STATES = (JobStateType.PENDING, JobStateType.QUEUED, JobStateType.RUNNING)
INITIAL_EXECUTION_STATES = (ExecutionStateType.NEW, ExecutionStateType.ASK_FOR_BID)
HISTORY_EVENT_TYPES = {
    "jobs": (JobHistoryType.JOB_LEVEL.value,),
    "executions": (JobHistoryType.EXECUTION_LEVEL.value,),
    "all": (JobHistoryType.JOB_LEVEL.value, JobHistoryType.EXECUTION_LEVEL.value),
}


class JobStore:
    """Jobs, executions and history in SQLite (WAL); ``":memory:"`` keeps them in memory."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._conn = sql.connect(path)
        self._lock = threading.RLock()
        self._readers = threading.local()
        self._readers_lock = threading.Lock()
        self._reader_conns: list[sqlite3.Connection] = []
        self._last_ns = 0
        self._closed = False
        self._batch_owner: int | None = None  # the thread whose batch() is open
        self.transactions = 0  # write transactions committed (or tried), for the bench
        self.statements = 0  # statements run on the writer connection, reads included
        self._conn.set_trace_callback(self._count_statement)
        self._ended_listeners: list[Callable[[Execution], None]] = []
        self._state_listeners: list[Callable[[JobStateType, Job], None]] = []
        self._timers: list[Callable[[float], None]] = []  # hear each write transaction's time
        self._cache = RowCache()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                with self._readers_lock:
                    for conn in self._reader_conns:
                        conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- jobs ---------------------------------------------------------------------------------

    def create_job(self, job: Job, evaluation_id: str) -> Job:
        """Store a new job as Pending, revision 1; a second job with the same ID is refused.

        The caller's ``job`` is not modified. The Job returned shares its nested values
        (tasks, labels, meta) with ``job``, which the caller hands over: the store keeps only
        the row it wrote, and a deep copy of every submission cost as much as its insert.
        """
        if not job.id:
            raise ValueError("job.id must be set before the job is stored")
        with self._transaction() as conn:
            now = self._tick()
            stored = job.model_copy(
                update={
                    "state": JobState(state_type=JobStateType.PENDING),
                    "revision": 1,
                    "version": 1,
                    "create_time": now,
                    "modify_time": now,
                }
            )
            sql.insert_job(conn, stored)
            entry = job_row(
                stored.id,
                JobStateType.UNDEFINED,
                JobStateType.PENDING,
                revision=1,
                time_ns=now,
                comment="Job submitted",
                topic=TOPIC_SUBMISSION,
                details={"EvaluationID": evaluation_id} if evaluation_id else None,
            )
            sql.insert_history(conn, entry)
            self._cache.put_job(stored, [])
        # the orchestrator logs the submission at INFO; this is the store's detail of it
        log.debug("event=job_created job_id=%s namespace=%s", stored.id, stored.namespace)
        return stored

    def get_job(self, job_id: str) -> Job:
        """The job with this ID, or with this unique ID prefix of at least 4 characters
        (``j-`` may be left out, as Bacalhau allows: ``cf111fa4``)."""
        try:
            return self._get_job(job_id)
        except NotFoundError:
            if job_id.startswith("j-") or len(job_id) < MIN_PREFIX_LENGTH:
                raise
        try:
            return self._get_job(f"j-{job_id}")
        except NotFoundError:
            raise NotFoundError(f"job {job_id} not found") from None

    def _get_job(self, job_id: str) -> Job:
        cached = self._cached(lambda cache: cache.job(job_id))
        if cached is not None:
            return cached
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {sql.JOB_COLUMNS} FROM jobs WHERE id = ?",  # noqa: S608
                (job_id,),
            ).fetchone()
            if row is not None:
                return sql.job_from_row(row)
            if len(job_id) < MIN_PREFIX_LENGTH:
                raise NotFoundError(f"job {job_id} not found")
            rows = conn.execute(
                f"SELECT id, {sql.JOB_COLUMNS} FROM jobs WHERE id >= ? AND id < ?"  # noqa: S608
                " ORDER BY id LIMIT 4",
                (job_id, job_id + "\U0010ffff"),
            ).fetchall()
        if not rows:
            raise NotFoundError(f"job {job_id} not found")
        if len(rows) > 1:
            shown = ", ".join(row[0] for row in rows[:3])
            raise ValidationError(
                "ID", f"{job_id!r} matches several jobs ({shown}, ...); give more of the ID"
            )
        return sql.job_from_row(rows[0][1:])

    def list_jobs(
        self,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | Sequence[LabelSelectorRequirement] | None = None,
        limit: int = DEFAULT_LIMIT,
        next_token: str = "",
        order_by: str = "created_at",
        reverse: bool = False,
    ) -> tuple[list[Job], str]:
        """One page of jobs and the token of the next page ("" when this is the last one).

        ``namespace`` None or "" lists every namespace. ``labels`` is a label selector
        (requirements, all of which must hold, with :func:`protocol.selectors.matches`'
        semantics) or a mapping of labels to equal. Ascending by ``order_by`` unless
        ``reverse``; ``limit`` 0 means the default page size.

        The token is the sort key and ID of the last job returned, and the selector is applied
        while reading (in batches, inside one read snapshot) rather than to a page after it
        was cut, so following the tokens lists every matching job once.
        """
        column = ORDER_COLUMNS.get(order_by)
        if column is None:
            known = ", ".join(ORDER_COLUMNS)
            raise ValidationError("order_by", f"unknown ordering {order_by!r} (known: {known})")
        if limit < 0:
            raise ValidationError("limit", "must not be negative")
        limit = limit or DEFAULT_LIMIT
        selector = _selector(labels)
        after = (
            PageToken.decode(next_token, order_by=order_by, reverse=reverse) if next_token else None
        )
        batch = max(limit + 1, SCAN_BATCH) if selector else limit + 1
        found: list[tuple[str | int, str, str]] = []
        with self._snapshot() as conn:
            while len(found) <= limit:
                query, params = sql.jobs_page_query(
                    column=column, namespace=namespace, after=after, reverse=reverse, limit=batch
                )
                rows = conn.execute(query, params).fetchall()
                for key, job_id, labels_json, job_json in rows:
                    if _selected(selector, labels_json):
                        found.append((key, job_id, job_json))
                        if len(found) > limit:
                            break
                if len(rows) < batch:
                    break
                after = PageToken(order_by, reverse, rows[-1][0], rows[-1][1])
        jobs = [
            Job.model_validate_json(job_json, context=STORED) for _, _, job_json in found[:limit]
        ]
        if len(found) <= limit:
            return jobs, ""
        last_key, last_id, _ = found[limit - 1]
        return jobs, PageToken(order_by, reverse, last_key, last_id).encode()

    def active_jobs(self) -> list[Job]:
        """Jobs not yet Completed, Failed or Stopped, oldest first: what a restart resumes."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {sql.JOB_COLUMNS} FROM jobs WHERE state IN (?, ?, ?)"  # noqa: S608
                " ORDER BY created_ns, id",
                tuple(state.value for state in ACTIVE_JOB_STATES),
            ).fetchall()
        return [sql.job_from_row(row) for row in rows]

    def job_ids(self, states: Iterable[JobStateType] = ACTIVE_JOB_STATES) -> list[str]:
        """IDs of the jobs in ``states`` (by default, those not ended), oldest first: what
        :meth:`active_jobs` finds, without reading a job."""
        wanted = tuple(state.value for state in states)
        marks = ", ".join("?" * len(wanted))
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT id FROM jobs WHERE state IN ({marks}) ORDER BY created_ns, id",  # noqa: S608
                wanted,
            ).fetchall()
        return [row[0] for row in rows]

    def update_job_state(
        self,
        job_id: str,
        state: JobStateType,
        message: str = "",
        queueing: Queueing = NOT_QUEUED,
    ) -> Job:
        """Move a job to ``state`` (checked against the table), with a history entry, and
        set the scheduler's ``queueing`` bookkeeping (cleared unless given).

        Staying in the same state (Queued -> Queued) only updates the message and the
        bookkeeping, and adds history only when the message changed; nothing changed writes
        nothing.
        """
        with self._transaction() as conn:
            job = self._load_job(conn, job_id)
            old = job.state
            check_job_transition(old.state_type, state)
            same_state = old.state_type == state
            if same_state and old.message == message and job.queueing == queueing:
                return job
            now = self._tick()
            updated = job.model_copy(
                update={
                    "state": JobState(state_type=state, message=message),
                    "revision": job.revision + 1,
                    "modify_time": now,
                }
            )
            if updated.queueing != queueing:
                updated = updated.with_queueing(queueing)
            sql.update_job(conn, updated)
            self._cache.put_job(updated)
            if not same_state or old.message != message:
                entry = job_row(
                    job_id,
                    old.state_type,
                    state,
                    revision=updated.revision,
                    time_ns=now,
                    comment=message,
                )
                sql.insert_history(conn, entry)
            if not same_state:
                for state_listener in self._state_listeners:
                    state_listener(old.state_type, updated)
        log.info(
            "event=job_state job_id=%s from=%s to=%s revision=%d message=%r",
            job_id, old.state_type.value, state.value, updated.revision, message,
        )  # fmt: skip
        return updated

    # -- executions ---------------------------------------------------------------------------

    def create_execution(self, execution: Execution, why: str = "") -> Execution:
        """Store a new execution of a stored job, revision 1, without its Job.

        It starts New, or AskForBid when the requester asks for a bid as it creates it.
        ``why`` (why this node: its rank) goes into the history entry.
        """
        with self._transaction() as conn:
            self._load_job(conn, execution.job_id)
            if execution.state not in INITIAL_EXECUTION_STATES:
                raise StateTransitionError(
                    f"a new execution starts New or AskForBid, not {execution.state.label}"
                )
            now = self._tick()
            stored = execution.model_copy(
                update={"revision": 1, "create_time": now, "modify_time": now}, deep=True
            )
            sql.insert_execution(conn, stored)
            entry = execution_row(
                stored,
                ExecutionStateType.UNDEFINED,
                time_ns=now,
                comment=f"{EXECUTION_CREATED}: {why}" if why else EXECUTION_CREATED,
            )
            sql.insert_history(conn, entry)
            self._cache.put_execution(stored)
        log.debug(
            "event=execution_created execution_id=%s job_id=%s node_id=%s state=%s",
            stored.id, stored.job_id, stored.node_id, stored.state.label,
        )  # fmt: skip
        return stored

    def get_execution(self, execution_id: str, include_job: bool = False) -> Execution:
        execution = self._cached(lambda cache: cache.execution(execution_id))
        if execution is not None and not include_job:
            return execution
        with self._read() as conn:
            if execution is None:
                execution = self._load_execution(conn, execution_id)
            if include_job:
                job = self._load_job(conn, execution.job_id)
                execution = execution.model_copy(update={"job": job})
        return execution

    def executions(self, job_id: str, include_job: bool = False) -> list[Execution]:
        """The job's executions in the order they were created."""
        found = self._cached(lambda cache: cache.executions(job_id))
        if found is None:
            with self._read() as conn:
                rows = conn.execute(
                    f"SELECT {sql.EXECUTION_COLUMNS} FROM executions WHERE job_id = ?"  # noqa: S608
                    " ORDER BY created_ns, id",
                    (job_id,),
                ).fetchall()
                found = [sql.execution_from_row(row) for row in rows]
                if self._batch_owner == threading.get_ident():
                    # inside this thread's batch: the rows are the transaction's, journalled
                    self._cache.put_job(self._load_job(conn, job_id), found)
        if not include_job or not found:
            return found
        job = self.get_job(job_id)
        return [e.model_copy(update={"job": job.model_copy(deep=True)}) for e in found]

    def live_executions(self) -> list[Execution]:
        """Every execution not yet in a terminal state, across jobs (one indexed query)."""
        live = json.dumps([state.value for state in ExecutionStateType if not state.terminal])
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {sql.EXECUTION_COLUMNS} FROM executions"  # noqa: S608
                " WHERE state IN (SELECT value FROM json_each(?)) ORDER BY created_ns, id",
                (live,),
            ).fetchall()
        return [sql.execution_from_row(row) for row in rows]

    def update_execution(
        self,
        execution_id: str,
        *,
        state: ExecutionStateType | None = None,
        desired: ExecutionDesiredStateType | None = None,
        message: str = "",
        run_output: RunCommandResult | None = None,
        published_result: SpecConfig | None = None,
        expect: Collection[ExecutionStateType] | None = None,
        details: Mapping[str, str] | None = None,
        verdict: Verdict | None = None,
    ) -> Execution:
        """Change an execution in one transaction, with a history entry.

        ``expect`` makes it a compare-and-set: unless the execution is in one of those states,
        :class:`StateTransitionError` is raised and nothing is written, so a stale message
        never overwrites a newer state. ``message`` goes to ComputeState.Message (and to
        DesiredState.Message when ``desired`` is given) and ``details`` to ComputeState.Details;
        ``verdict`` is the requester's bookkeeping of how it ended. A new state clears the old
        message, details and verdict.
        """
        with self._transaction() as conn:
            current = self._load_execution(conn, execution_id)
            old = current.state
            if expect is not None and old not in expect:
                wanted = " or ".join(sorted(s.label for s in expect)) or "nothing"
                raise StateTransitionError(
                    f"execution {execution_id} is {old.label}, expected {wanted}"
                )
            compute = current.compute_state
            if state is not None and state != old:
                check_execution_transition(old, state)
                compute = ComputeState(state_type=state, message=message)
            elif message:
                compute = compute.model_copy(update={"message": message})
            if details is not None:
                compute = compute.model_copy(update={"details": dict(details)})
            wanted_state = current.desired_state
            if desired is not None and (desired != wanted_state.state_type or message):
                wanted_state = DesiredState(state_type=desired, message=message)
            now = self._tick()
            changes: dict[str, Any] = {
                "compute_state": compute,
                "desired_state": wanted_state,
                "revision": current.revision + 1,
                "modify_time": now,
            }
            if run_output is not None:
                changes["run_output"] = run_output
            if published_result is not None:
                changes["published_result"] = published_result
            updated = current.model_copy(update=changes)
            if verdict is not None or (state is not None and state != old):
                verdict = verdict or NO_VERDICT
                if updated.verdict != verdict:
                    updated = updated.with_verdict(verdict)
            sql.update_execution(conn, updated)
            entry = execution_row(updated, old, time_ns=now, comment=message)
            sql.insert_history(conn, entry)
            self._cache.put_execution(updated)
        if updated.state.terminal and not old.terminal:
            for listener in self._ended_listeners:
                listener(updated)
        log.debug(
            "event=execution_updated execution_id=%s job_id=%s from=%s to=%s desired=%s"
            " revision=%d message=%r",
            execution_id, updated.job_id, old.label, updated.state.label,
            updated.desired_state.state_type.label, updated.revision, message,
        )  # fmt: skip
        return updated

    def count_executions_by_node(self, job_id: str) -> dict[str, int]:
        """How many executions of the job each node has had, in any state."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT node_id, COUNT(*) FROM executions WHERE job_id = ? GROUP BY node_id",
                (job_id,),
            ).fetchall()
        return {str(node_id): int(count) for node_id, count in rows}

    # -- history ------------------------------------------------------------------------------

    def history(
        self,
        job_id: str,
        *,
        execution_id: str | None = None,
        node_id: str | None = None,
        event_type: str | None = None,
        since_ns: int = 0,
    ) -> list[JobHistory]:
        """The job's history, oldest first; ``event_type`` is jobs, executions or all (None)."""
        types = HISTORY_EVENT_TYPES.get(event_type or "all")
        if types is None:
            known = ", ".join(HISTORY_EVENT_TYPES)
            raise ValidationError("event_type", f"unknown type {event_type!r} (known: {known})")
        query, params = sql.history_query(
            job_id, types=types, execution_id=execution_id, node_id=node_id, since_ns=since_ns
        )
        with self._read() as conn:
            self._load_job(conn, job_id)
            rows = conn.execute(query, params).fetchall()
        return [JobHistory.model_validate_json(row[0]) for row in rows]

    # -- internals ----------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection to read with. On a file each thread reads through its own connection
        without the writers' lock (WAL readers see the last commit and block nobody); an
        in-memory store has one connection, shared under the lock."""
        if self._path == ":memory:" or self._batch_owner == threading.get_ident():
            with self._lock:
                yield self._conn
            return
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            with self._readers_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the job store is closed")
                conn = sql.connect(self._path, migrate_schema=False)
                self._reader_conns.append(conn)
            self._readers.conn = conn
        yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A connection whose reads, until the block ends, all see the same commit: a read
        transaction on a file (WAL), the lock that keeps writers out in memory."""
        with self._read() as conn:
            if conn is self._conn:
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.
        Inside :meth:`batch` (same thread) it is a savepoint of the batch's transaction."""
        with self._lock:
            if self._batch_owner == threading.get_ident():
                self._conn.execute("SAVEPOINT change")
                try:
                    with self._cache.change():
                        yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK TO change")
                    self._conn.execute("RELEASE change")
                    raise
                self._conn.execute("RELEASE change")
                return
            started = time.perf_counter()
            try:
                with self._cache_kept_in_step(), self._conn:
                    self.transactions += 1
                    self._conn.execute("BEGIN IMMEDIATE")
                    yield self._conn
            finally:
                self._timed(started)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every change this thread makes in the block commits as one transaction (each is a
        savepoint, so a refused change still writes nothing), and this thread's reads see
        them. Other writers wait for the block: keep it short."""
        with self._lock:
            if self._batch_owner is not None:  # nested: the outer batch commits
                yield
                return
            started = time.perf_counter()
            try:
                with self._cache_kept_in_step(), self._conn:
                    self.transactions += 1
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._batch_owner = threading.get_ident()
                    try:
                        yield
                    finally:
                        self._batch_owner = None
            finally:
                self._timed(started)

    def _timed(self, started: float) -> None:
        seconds = time.perf_counter() - started
        for timer in self._timers:
            timer(seconds)

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
        committed) or this thread's; None (read SQLite) while another thread writes."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return read(self._cache)
        finally:
            self._lock.release()

    def on_job_state(self, listener: Callable[[JobStateType, Job], None]) -> None:
        """Call ``listener(before, job)`` with every job this store moves to another state."""
        self._state_listeners.append(listener)

    def on_transaction(self, timer: Callable[[float], None]) -> None:
        """Call ``timer`` with the seconds each write transaction held the writer."""
        self._timers.append(timer)

    def count_by_state(self) -> tuple[dict[str, int], dict[int, int]]:
        """Jobs by state (its wire name) and executions by state (its number)."""
        with self._read() as conn:
            jobs = conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
            runs = conn.execute("SELECT state, COUNT(*) FROM executions GROUP BY state").fetchall()
        return {str(s): int(n) for s, n in jobs}, {int(s): int(n) for s, n in runs}

    # -- reputations ---------------------------------------------------------------------

    def reputations(self) -> dict[str, Reputation]:
        """Every node's reputation as last saved."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT node_id, completed, failed, updated_ns FROM reputations"
            ).fetchall()
        return {
            node: Reputation(completed, failed, updated)
            for node, completed, failed, updated in rows
        }

    def put_reputation(self, node_id: str, reputation: Reputation) -> None:
        """Save a node's reputation (in the batch under way, if any)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO reputations (node_id, completed, failed, updated_ns)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET"
                " completed = excluded.completed, failed = excluded.failed,"
                " updated_ns = excluded.updated_ns",
                (node_id, reputation.completed, reputation.failed, reputation.updated_ns),
            )

    def on_execution_ended(self, listener: Callable[[Execution], None]) -> None:
        """Call ``listener`` with every execution this store moves to a terminal state."""
        self._ended_listeners.append(listener)

    def stats(self) -> dict[str, int]:
        return {
            "Transactions": self.transactions,
            "Statements": self.statements,
            "RowsChanged": self._conn.total_changes,
            "CachedJobs": len(self._cache),
            "CacheHits": self._cache.hits,
            "CacheMisses": self._cache.misses,
        }

    def _count_statement(self, _statement: str) -> None:
        self.statements += 1

    def _tick(self) -> int:
        """Now, in Unix nanoseconds, strictly later than any time this store handed out."""
        self._last_ns = max(now_ns(), self._last_ns + 1)
        return self._last_ns

    def _load_job(self, conn: sqlite3.Connection, job_id: str) -> Job:
        if conn is self._conn:  # the writer's lock is held: the cache is the writer's view
            cached = self._cache.job(job_id)
            if cached is not None:
                return cached
        row = conn.execute(
            f"SELECT {sql.JOB_COLUMNS} FROM jobs WHERE id = ?",  # noqa: S608
            (job_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"job {job_id} not found")
        return sql.job_from_row(row)

    def _load_execution(self, conn: sqlite3.Connection, execution_id: str) -> Execution:
        if conn is self._conn:
            cached = self._cache.execution(execution_id)
            if cached is not None:
                return cached
        row = conn.execute(
            f"SELECT {sql.EXECUTION_COLUMNS} FROM executions WHERE id = ?",  # noqa: S608
            (execution_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"execution {execution_id} not found")
        return sql.execution_from_row(row)


def _selector(
    labels: Mapping[str, str] | Sequence[LabelSelectorRequirement] | None,
) -> list[LabelSelectorRequirement]:
    if not labels:
        return []
    if isinstance(labels, Mapping):
        return [
            LabelSelectorRequirement(key=key, operator="=", values=[value])
            for key, value in labels.items()
        ]
    return list(labels)


def _selected(selector: Sequence[LabelSelectorRequirement], labels_json: str | None) -> bool:
    if not selector:
        return True
    labels = json.loads(labels_json) if labels_json else {}
    return all(matches(labels, requirement) for requirement in selector)
