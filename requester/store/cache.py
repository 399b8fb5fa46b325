"""The live rows of the job store as they were last written, so the orchestrator reads back a
job or execution it just wrote without a query and a JSON parse.

Only jobs still in flight are kept (with their executions), so its size follows the jobs in
flight, not the jobs ever run. It is changed only by the thread holding the store's writer
lock, inside a transaction, and each change is journalled: a rolled-back savepoint or
transaction undoes its changes here too, so the cache never holds a row the database does
not. The rows are the store's own: callers must not mutate them (they ``model_copy``).

It assumes this process is the database's only writer (SQLite's file lock makes it so). A
PostgreSQL store may have other writers, so it keeps a :class:`NoCache`, which holds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from protocol.execution import Execution
from protocol.job import Job

_MISSING: Final = object()


class RowCache:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._executions: dict[str, Execution] = {}
        # Execution IDs of a cached job, in creation order: every one it has (a job is only
        # cached with its whole list, so a hit needs no query).
        self._of_job: dict[str, tuple[str, ...]] = {}
        self._journal: list[tuple[dict[str, Any], str, object]] = []
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._jobs)

    # -- reads ------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job | None:
        found = self._jobs.get(job_id)
        self._count(found is not None)
        return found

    def execution(self, execution_id: str) -> Execution | None:
        found = self._executions.get(execution_id)
        self._count(found is not None)
        return found

    def executions(self, job_id: str) -> list[Execution] | None:
        ids = self._of_job.get(job_id)
        self._count(ids is not None)
        if ids is None:
            return None
        return [self._executions[execution_id] for execution_id in ids]

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    # -- writes (writer lock held, inside a transaction) ------------------------------------

    def put_job(self, job: Job, executions: list[Execution] | None = None) -> None:
        """Keep ``job`` (and, when given, the whole list of its executions); a job that has
        ended is dropped with its executions instead."""
        if job.state.state_type.terminal:
            self.drop_job(job.id)
            return
        if job.id not in self._of_job and executions is None:
            return  # without its executions a hit would still need the query
        self._set(self._jobs, job.id, job)
        if executions is not None:
            for execution in executions:
                self._set(self._executions, execution.id, execution)
            self._set(self._of_job, job.id, tuple(e.id for e in executions))

    def put_execution(self, execution: Execution) -> None:
        """Keep ``execution`` if its job is kept (a new one joins the job's list), as it is
        stored: without its Job."""
        ids = self._of_job.get(execution.job_id)
        if ids is None:
            return
        if execution.job is not None:
            execution = execution.model_copy(update={"job": None})
        if execution.id not in ids:
            self._set(self._of_job, execution.job_id, (*ids, execution.id))
        self._set(self._executions, execution.id, execution)

    def drop_job(self, job_id: str) -> None:
        for execution_id in self._of_job.get(job_id, ()):
            self._set(self._executions, execution_id, _MISSING)
        self._set(self._of_job, job_id, _MISSING)
        self._set(self._jobs, job_id, _MISSING)

    def _set(self, table: dict[str, Any], key: str, value: object) -> None:
        previous = table.get(key, _MISSING)
        if previous is value:
            return
        self._journal.append((table, key, previous))
        if value is _MISSING:
            del table[key]
        else:
            table[key] = value

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def change(self) -> Iterator[None]:
        """A savepoint: the block's changes are undone if it raises."""
        mark = len(self._journal)
        try:
            yield
        except BaseException:
            self._undo(mark)
            raise

    def committed(self) -> None:
        self._journal.clear()

    def rolled_back(self) -> None:
        self._undo(0)

    def _undo(self, mark: int) -> None:
        while len(self._journal) > mark:
            table, key, previous = self._journal.pop()
            if previous is _MISSING:
                table.pop(key, None)
            else:
                table[key] = previous


class NoCache(RowCache):
    """A cache that keeps nothing: every read goes to the database, which other processes
    may write as well."""

    def put_job(self, job: Job, executions: list[Execution] | None = None) -> None:
        return

    def put_execution(self, execution: Execution) -> None:
        return
