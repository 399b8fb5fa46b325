"""The planner: applies a scheduler :class:`Plan` to the job store and the message bus."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from protocol.bookkeeping import Verdict
from protocol.errors import StateTransitionError, TransportError
from protocol.execution import ComputeState, DesiredState, Execution
from protocol.ids import new_execution_id
from protocol.job import Job, JobStateType
from protocol.messages import AskForBid, BidAccepted, BidRejected, CancelExecution, Message
from protocol.resources import Resources
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from requester.plan import ASKING, Plan
from requester.store import JobStore

log = logging.getLogger("bacalao.requester")

# A job in these states has not been seen running; one that ends in ENDED_BY_RUNS after an
# execution ran is recorded Running first, so its history reads as Bacalhau's does.
NOT_RUN = frozenset({JobStateType.PENDING, JobStateType.QUEUED})
ENDED_BY_RUNS = frozenset({JobStateType.COMPLETED, JobStateType.FAILED})


class Sender(Protocol):
    def send(self, node_id: str, message: Message) -> None: ...


class Outbox(Sender, Protocol):
    """Where the orchestrator's messages leave: :class:`protocol.outbox.Outbox` in a node."""

    def send_all(self, messages: Sequence[tuple[str, Message]]) -> None: ...


class Held:
    """Messages held back until the pass that planned them has committed its writes: a
    reply must never find the store without the row it answers."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []

    def send(self, node_id: str, message: Message) -> None:
        self.messages.append((node_id, message))

    def take(self) -> list[tuple[str, Message]]:
        taken, self.messages = self.messages, []
        return taken


Placed = Callable[[str, str, Resources], None]


class Planner:
    """``on_placed(node_id, execution_id, needs)`` hears of every ask sent (its room taken)."""

    def __init__(
        self,
        store: JobStore,
        outbox: Sender,
        on_placed: Placed | None = None,
        on_mismatch: Callable[[Execution], None] | None = None,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._on_placed = on_placed
        self._on_mismatch = on_mismatch

    def apply(self, plan: Plan, job: Job, needs: Resources) -> None:
        for execution_id, reason in plan.fail:
            self._fail(execution_id, reason)
        for execution_id in plan.accept:
            execution = self._update(
                execution_id, S.BID_ACCEPTED, D.RUNNING, "bid accepted", (S.ASK_FOR_BID_ACCEPTED,)
            )
            if execution is not None:
                self._send(execution, BidAccepted(execution_id=execution.id, job_id=job.id))
        for execution_id, reason in plan.reject:
            execution = self._update(
                execution_id, S.BID_REJECTED, D.STOPPED, reason, (S.ASK_FOR_BID_ACCEPTED,)
            )
            if execution is not None:
                self._send(
                    execution, BidRejected(execution_id=execution.id, job_id=job.id, reason=reason)
                )
        for execution_id, reason in plan.cancel:
            self._cancel(execution_id, job.id, reason)
        for execution_id, reason in plan.mismatched:
            self._mismatch(execution_id, reason)
        for node in plan.ask:
            self._ask(job, node.node_id, needs, plan.direct, plan.why.get(node.node_id, ""))
        if plan.job_state is not None:
            current = job.state
            same = current.state_type == plan.job_state and (
                plan.job_state != JobStateType.QUEUED
                or (job.queueing, current.message) == (plan.queueing, plan.job_message)
            )
            if not same:
                try:
                    if (
                        plan.ran
                        and plan.job_state in ENDED_BY_RUNS
                        and current.state_type in NOT_RUN
                    ):
                        self._store.update_job_state(job.id, JobStateType.RUNNING)
                    self._store.update_job_state(
                        job.id, plan.job_state, plan.job_message, plan.queueing
                    )
                except StateTransitionError as exc:
                    log.info("event=job_state_skipped job=%s reason=%r", job.id, str(exc))

    def _update(
        self,
        execution_id: str,
        state: S,
        desired: D,
        message: str,
        expect: tuple[S, ...],
        verdict: Verdict | None = None,
    ) -> Execution | None:
        try:
            return self._store.update_execution(
                execution_id,
                state=state,
                desired=desired,
                message=message,
                expect=expect,
                verdict=verdict,
            )
        except StateTransitionError as exc:
            log.debug(
                "event=execution_update_skipped execution=%s reason=%r", execution_id, str(exc)
            )
            return None

    def _mismatch(self, execution_id: str, reason: str) -> None:
        """A completed execution whose result lost the vote: marked, its node told of."""
        marked = self._store.update_execution(
            execution_id,
            message=reason,
            expect=(S.COMPLETED,),
            verdict=Verdict(mismatched=True),
        )
        log.info("event=result_mismatched execution=%s node=%s", execution_id, marked.node_id)
        if self._on_mismatch is not None:
            self._on_mismatch(marked)

    def _fail(self, execution_id: str, reason: str) -> None:
        before = self._store.get_execution(execution_id)
        execution = self._update(
            execution_id,
            S.FAILED,
            D.STOPPED,
            reason,
            (before.state,),
            Verdict(retryable=True, never_ran=before.state in ASKING),
        )
        if execution is None:
            return
        message: Message
        if before.state in ASKING:
            message = BidRejected(execution_id=execution_id, job_id=before.job_id, reason=reason)
        else:
            message = CancelExecution(
                execution_id=execution_id, job_id=before.job_id, reason=reason
            )
        self._send(execution, message)

    def _cancel(self, execution_id: str, job_id: str, reason: str) -> None:
        before = self._store.get_execution(execution_id)
        if before.state.terminal:
            return
        execution = self._update(execution_id, S.CANCELLED, D.STOPPED, reason, (before.state,))
        if execution is None:
            return
        message: Message
        if before.state in ASKING:
            message = BidRejected(execution_id=execution_id, job_id=job_id, reason=reason)
        else:
            message = CancelExecution(execution_id=execution_id, job_id=job_id, reason=reason)
        self._send(execution, message)

    def _ask(self, job: Job, node_id: str, needs: Resources, direct: bool, why: str = "") -> None:
        """Ask ``node_id`` to bid; ``direct``: to start at once if it bids (the requester
        knows it has room), so no slot waits for an accept. ``why``: its rank, for the
        job's history."""
        execution = Execution(
            id=new_execution_id(),
            namespace=job.namespace,
            name=job.name,
            node_id=node_id,
            job_id=job.id,
            allocated_resources={"Tasks": {job.task.name: needs.to_wire()}},
            desired_state=DesiredState(state_type=D.RUNNING if direct else D.PENDING),
            compute_state=ComputeState(state_type=S.ASK_FOR_BID),
        )
        stored = self._store.create_execution(execution, why)
        if self._on_placed is not None:
            self._on_placed(node_id, stored.id, needs)
        log.debug("event=ask_for_bid job=%s execution=%s node=%s", job.id, stored.id, node_id)
        with_job = stored.model_copy(update={"job": job})
        self._send(stored, AskForBid(execution=with_job, wait_for_approval=not direct))

    def _send(self, execution: Execution, message: Message) -> None:
        self.send_to(execution.node_id, message)

    def send_to(self, node_id: str, message: Message) -> None:
        """Send, logging (not raising) a transport failure: timeouts recover from it."""
        try:
            self._outbox.send(node_id, message)
        except TransportError as exc:
            log.warning(
                "event=send_failed node=%s type=%s error=%r",
                node_id,
                type(message).__name__,
                str(exc),
            )
