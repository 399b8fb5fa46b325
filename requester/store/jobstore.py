"""The requester's job store: jobs, executions and their history, on any :class:`Database`.

Every state change is one transaction that reads the row (locking it where other processes
may write), checks the transition table, writes the row with a bumped ``Revision`` and
appends a history entry, so a crash never leaves a state without its history, and a refused
transition writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from protocol.bookkeeping import NOT_QUEUED, Queueing
from protocol.errors import NotFoundError, ValidationError
from protocol.history import TOPIC_SUBMISSION, JobHistory, JobHistoryType, job_row
from protocol.job import Job, JobState, JobStateType, LabelSelectorRequirement
from protocol.states import check_job_transition
from protocol.wire import STORED
from requester.store import paging, rows
from requester.store.core import ACTIVE_JOB_STATES
from requester.store.database import Database
from requester.store.executions import ExecutionStore
from requester.store.leases import (
    DEFAULT_TTL_S,
    NS_PER_S,
    Leases,
    delete_lease,
    insert_lease,
)
from requester.store.paging import ORDER_COLUMNS, PageToken
from requester.store.schema import JOB_COLUMNS

log = logging.getLogger("bacalao.store")

DEFAULT_LIMIT = 100
SCAN_BATCH = 256  # jobs read per query while a label selector filters them
MIN_PREFIX_LENGTH = 4
HISTORY_EVENT_TYPES = {
    "jobs": (JobHistoryType.JOB_LEVEL.value,),
    "executions": (JobHistoryType.EXECUTION_LEVEL.value,),
    "all": (JobHistoryType.JOB_LEVEL.value, JobHistoryType.EXECUTION_LEVEL.value),
}


class JobStore(ExecutionStore):
    """Jobs, executions and history in the database ``target`` names: a SQLite file path
    (``":memory:"`` keeps them in memory), a ``sqlite://`` or ``postgresql://`` URL, or an
    opened :class:`Database`."""

    def __init__(
        self,
        target: str | Path | Database,
        *,
        lease_owner: str = "",
        lease_ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        """With a ``lease_owner``, each job created is leased to it for ``lease_ttl_s``
        (renewed by its :class:`~requester.lease_keeper.LeaseKeeper`) and the lease goes
        when the job ends."""
        if not isinstance(target, Database):
            from requester.store.targets import open_database

            target = open_database(target)
        super().__init__(target)
        self.leases = Leases(target)  # which requester follows which job
        self.lease_owner = lease_owner
        self._lease_ttl_ns = int(lease_ttl_s * NS_PER_S)

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
            try:
                rows.insert_job(conn, stored)
            except self._db.integrity_errors:
                raise ValidationError("ID", f"job {job.id} already exists") from None
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
            rows.insert_history(conn, entry)
            if self.lease_owner:
                insert_lease(conn, stored.id, self.lease_owner, now + self._lease_ttl_ns)
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
        if "\x00" in job_id:  # no ID holds one, and PostgreSQL cannot even compare it
            raise NotFoundError(f"job {job_id} not found")
        with self._db.read() as conn:
            try:
                return self._load_job(conn, job_id)
            except NotFoundError:
                pass
            if len(job_id) < MIN_PREFIX_LENGTH:
                raise NotFoundError(f"job {job_id} not found")
            found = conn.execute(
                f"SELECT id, {JOB_COLUMNS} FROM jobs WHERE id >= ? AND id < ?"  # noqa: S608
                " ORDER BY id LIMIT 4",
                (job_id, job_id + "\U0010ffff"),
            ).fetchall()
        if not found:
            raise NotFoundError(f"job {job_id} not found")
        if len(found) > 1:
            shown = ", ".join(row[0] for row in found[:3])
            raise ValidationError(
                "ID", f"{job_id!r} matches several jobs ({shown}, ...); give more of the ID"
            )
        return rows.job_from_row(found[0][1:])

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
        selector = paging.selector(labels)
        after = (
            PageToken.decode(next_token, order_by=order_by, reverse=reverse) if next_token else None
        )
        batch = max(limit + 1, SCAN_BATCH) if selector else limit + 1
        found: list[tuple[str | int, str, str]] = []
        with self._db.snapshot() as conn:
            while len(found) <= limit:
                query, params = paging.jobs_page_query(
                    column=column,
                    labels_sql=self._db.labels_sql,
                    namespace=namespace,
                    after=after,
                    reverse=reverse,
                    limit=batch,
                )
                page = conn.execute(query, params).fetchall()
                for key, job_id, labels_json, job_json in page:
                    if paging.selected(selector, labels_json):
                        found.append((key, job_id, job_json))
                        if len(found) > limit:
                            break
                if len(page) < batch:
                    break
                after = PageToken(order_by, reverse, page[-1][0], page[-1][1])
        jobs = [
            Job.model_validate_json(job_json, context=STORED) for _, _, job_json in found[:limit]
        ]
        if len(found) <= limit:
            return jobs, ""
        last_key, last_id, _ = found[limit - 1]
        return jobs, PageToken(order_by, reverse, last_key, last_id).encode()

    def active_jobs(self) -> list[Job]:
        """Jobs not yet Completed, Failed or Stopped, oldest first: what a restart resumes."""
        with self._db.read() as conn:
            found = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?, ?, ?)"  # noqa: S608
                " ORDER BY created_ns, id",
                tuple(state.value for state in ACTIVE_JOB_STATES),
            ).fetchall()
        return [rows.job_from_row(row) for row in found]

    def job_ids(self, states: Iterable[JobStateType] = ACTIVE_JOB_STATES) -> list[str]:
        """IDs of the jobs in ``states`` (by default, those not ended), oldest first: what
        :meth:`active_jobs` finds, without reading a job."""
        wanted = tuple(state.value for state in states)
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        with self._db.read() as conn:
            found = conn.execute(
                f"SELECT id FROM jobs WHERE state IN ({marks}) ORDER BY created_ns, id",  # noqa: S608
                wanted,
            ).fetchall()
        return [row[0] for row in found]

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
            rows.update_job(conn, updated)
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
                rows.insert_history(conn, entry)
            if not same_state and state.terminal and self.lease_owner:
                delete_lease(conn, job_id, self.lease_owner)
            if not same_state:
                for state_listener in self._state_listeners:
                    state_listener(old.state_type, updated)
        log.info(
            "event=job_state job_id=%s from=%s to=%s revision=%d message=%r",
            job_id, old.state_type.value, state.value, updated.revision, message,
        )  # fmt: skip
        return updated

    def on_job_state(self, listener: Callable[[JobStateType, Job], None]) -> None:
        """Call ``listener(before, job)`` with every job this store moves to another state."""
        self._state_listeners.append(listener)

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
        query, params = paging.history_query(
            job_id, types=types, execution_id=execution_id, node_id=node_id, since_ns=since_ns
        )
        with self._db.read() as conn:
            self._load_job(conn, job_id)
            found = conn.execute(query, params).fetchall()
        return [JobHistory.model_validate_json(row[0]) for row in found]

    def count_by_state(self) -> tuple[dict[str, int], dict[int, int]]:
        """Jobs by state (its wire name) and executions by state (its number)."""
        with self._db.read() as conn:
            jobs = conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
            runs = conn.execute("SELECT state, COUNT(*) FROM executions GROUP BY state").fetchall()
        return {str(s): int(n) for s, n in jobs}, {int(s): int(n) for s, n in runs}
