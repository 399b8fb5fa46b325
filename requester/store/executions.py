"""The job store's executions: created New or AskForBid, changed by compare-and-set, each
change with its history entry."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from protocol.bookkeeping import NO_VERDICT, Verdict
from protocol.errors import StateTransitionError, ValidationError
from protocol.execution import ComputeState, DesiredState, Execution, RunCommandResult
from protocol.history import EXECUTION_CREATED, execution_row
from protocol.job import SpecConfig
from protocol.states import (
    ExecutionDesiredStateType,
    ExecutionStateType,
    check_execution_transition,
)
from requester.store import rows
from requester.store.core import StoreCore
from requester.store.schema import EXECUTION_COLUMNS

log = logging.getLogger("bacalao.store")

INITIAL_EXECUTION_STATES = (ExecutionStateType.NEW, ExecutionStateType.ASK_FOR_BID)
LIVE_EXECUTION_STATES = tuple(state.value for state in ExecutionStateType if not state.terminal)


class ExecutionStore(StoreCore):
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
            try:
                rows.insert_execution(conn, stored)
            except self._db.integrity_errors:
                raise ValidationError("ID", f"execution {stored.id} already exists") from None
            entry = execution_row(
                stored,
                ExecutionStateType.UNDEFINED,
                time_ns=now,
                comment=f"{EXECUTION_CREATED}: {why}" if why else EXECUTION_CREATED,
            )
            rows.insert_history(conn, entry)
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
        with self._db.read() as conn:
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
            with self._db.read() as conn:
                read = conn.execute(
                    f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE job_id = ?"  # noqa: S608
                    " ORDER BY created_ns, id",
                    (job_id,),
                ).fetchall()
                found = [rows.execution_from_row(row) for row in read]
                if self._db.batch_is_mine():
                    # inside this thread's batch: the rows are the transaction's, journalled
                    self._cache.put_job(self._load_job(conn, job_id), found)
        if not include_job or not found:
            return found
        with self._db.read() as conn:
            job = self._load_job(conn, job_id)
        return [e.model_copy(update={"job": job.model_copy(deep=True)}) for e in found]

    def live_executions(self) -> list[Execution]:
        """Every execution not yet in a terminal state, across jobs (one indexed query)."""
        marks = ", ".join("?" * len(LIVE_EXECUTION_STATES))
        with self._db.read() as conn:
            found = conn.execute(
                f"SELECT {EXECUTION_COLUMNS} FROM executions"  # noqa: S608
                f" WHERE state IN ({marks}) ORDER BY created_ns, id",
                LIVE_EXECUTION_STATES,
            ).fetchall()
        return [rows.execution_from_row(row) for row in found]

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
            rows.update_execution(conn, updated)
            entry = execution_row(updated, old, time_ns=now, comment=message)
            rows.insert_history(conn, entry)
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
        with self._db.read() as conn:
            found = conn.execute(
                "SELECT node_id, COUNT(*) FROM executions WHERE job_id = ? GROUP BY node_id",
                (job_id,),
            ).fetchall()
        return {str(node_id): int(count) for node_id, count in found}

    def on_execution_ended(self, listener: Callable[[Execution], None]) -> None:
        """Call ``listener`` with every execution this store moves to a terminal state."""
        self._ended_listeners.append(listener)
