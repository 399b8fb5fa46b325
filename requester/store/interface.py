"""What the rest of bacalao asks of a job store: every backend (SQLite, PostgreSQL) answers
it through :class:`~requester.store.jobstore.JobStore`, and code that only uses a store types
against :class:`Store`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from protocol.bookkeeping import NOT_QUEUED, Queueing, Verdict
from protocol.execution import Execution, RunCommandResult
from protocol.history import JobHistory
from protocol.job import Job, JobStateType, LabelSelectorRequirement, SpecConfig
from protocol.states import ExecutionDesiredStateType, ExecutionStateType
from requester.reputation import Reputation
from requester.store.leases import Leases


class Store(Protocol):
    @property
    def leases(self) -> Leases:
        """Which requester follows which job."""
        ...

    @property
    def lease_owner(self) -> str:
        """The requester the jobs this store creates are leased to ("" on a store of its
        own, which leases nothing)."""
        ...

    # -- jobs
    def create_job(self, job: Job, evaluation_id: str) -> Job: ...

    def get_job(self, job_id: str) -> Job: ...

    def list_jobs(
        self,
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | Sequence[LabelSelectorRequirement] | None = None,
        limit: int = ...,
        next_token: str = "",
        order_by: str = "created_at",
        reverse: bool = False,
    ) -> tuple[list[Job], str]: ...

    def active_jobs(self) -> list[Job]: ...

    def job_ids(self, states: Iterable[JobStateType] = ...) -> list[str]: ...

    def update_job_state(
        self,
        job_id: str,
        state: JobStateType,
        message: str = "",
        queueing: Queueing = NOT_QUEUED,
    ) -> Job: ...

    # -- executions
    def create_execution(self, execution: Execution, why: str = "") -> Execution: ...

    def get_execution(self, execution_id: str, include_job: bool = False) -> Execution: ...

    def executions(self, job_id: str, include_job: bool = False) -> list[Execution]: ...

    def live_executions(self) -> list[Execution]: ...

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
    ) -> Execution: ...

    def count_executions_by_node(self, job_id: str) -> dict[str, int]: ...

    # -- history, counts, node reputations
    def history(
        self,
        job_id: str,
        *,
        execution_id: str | None = None,
        node_id: str | None = None,
        event_type: str | None = None,
        since_ns: int = 0,
    ) -> list[JobHistory]: ...

    def count_by_state(self) -> tuple[dict[str, int], dict[int, int]]: ...

    def reputations(self) -> dict[str, Reputation]: ...

    def change_reputation(
        self, node_id: str, change: Callable[[Reputation], Reputation]
    ) -> None: ...

    # -- transactions, listeners, lifetime
    def batch(self) -> AbstractContextManager[None]: ...

    def on_job_state(self, listener: Callable[[JobStateType, Job], None]) -> None: ...

    def on_execution_ended(self, listener: Callable[[Execution], None]) -> None: ...

    def on_reputation(self, listener: Callable[[str, Reputation], None]) -> None: ...

    def on_transaction(self, timer: Callable[[float], None]) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...
