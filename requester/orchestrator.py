"""The orchestrator: owns every job from submission to its end.

All scheduling runs on one worker thread, fed by a queue of events (job submitted, message
received, timer due, node lost), so job and execution state change in one place, in order.
The API thread only validates and stores new jobs, and marks jobs stopped.
"""

from __future__ import annotations

import heapq
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field

from protocol.envelope import Envelope
from protocol.errors import NotFoundError, StateTransitionError, ValidationError
from protocol.ids import new_evaluation_id, new_job_id, now_ns
from protocol.job import Job, JobStateType
from protocol.messages import (
    BidRejected,
    BidResult,
    ComputeError,
    ExecutionStarted,
    Heartbeat,
    NodeInfoMessage,
    RunResult,
    ShutdownNotice,
)
from protocol.node import NodeInfo, NodeState
from protocol.resources import Resources
from protocol.specs import validate_job
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from requester.nodes import NodeTable
from requester.planner import Outbox, Planner
from requester.scheduler import (
    ASKING,
    BUSY,
    NEVER_RAN,
    RETRYABLE,
    SchedulerConfig,
    disowned,
    job_needs,
    schedule,
)
from requester.service import SubmitResult
from requester.store import JobStore

log = logging.getLogger("bacalao.requester")

REQUESTER_ID_META = "bacalhau.org/requester.id"


@dataclass(frozen=True)
class RequesterConfig:
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    disconnect_after_s: float = 15.0
    tick_s: float = 0.25
    audit_s: float = 2.0
    # After a restart, jobs already in the store wait this long for the compute nodes to
    # announce themselves again before "nobody can run it" is believed.
    settle_s: float = 15.0


class Orchestrator:
    """Implements :class:`requester.service.OrchestratorService` for the API."""

    def __init__(
        self,
        info: NodeInfo,
        store: JobStore,
        outbox: Outbox,
        config: RequesterConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._info = info
        self._store = store
        self._config = config or RequesterConfig()
        self._rng = rng or random.Random()
        self.node_table = NodeTable(self._config.disconnect_after_s)
        self._planner = Planner(store, outbox)
        self._events: queue.Queue[tuple[str, object]] = queue.Queue()
        self._wakes: list[tuple[int, str]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._queued_checked = False
        self._started_ns = 0

    # -- OrchestratorService -------------------------------------------------------------

    @property
    def store(self) -> JobStore:
        return self._store

    def submit(self, job: Job) -> SubmitResult:
        warnings = validate_job(job)
        job.id = new_job_id()
        job.name = job.name or job.id
        job.meta[REQUESTER_ID_META] = self._info.node_id
        evaluation_id = new_evaluation_id()
        self._store.create_job(job, evaluation_id)
        log.info(
            "event=job_submitted job=%s count=%d engine=%s", job.id, job.count, job.task.engine.type
        )
        self._events.put(("evaluate", job.id))
        return SubmitResult(job_id=job.id, evaluation_id=evaluation_id, warnings=warnings)

    def stop(self, job_id: str, reason: str) -> str:
        job = self._store.get_job(job_id)
        if job.terminal:
            raise ValidationError(
                "id", f"job {job.id} already ended ({job.state.state_type.value})"
            )
        try:
            self._store.update_job_state(job.id, JobStateType.STOPPED, reason or "stopped by user")
        except StateTransitionError as exc:
            raise ValidationError("id", str(exc)) from None
        self._events.put(("evaluate", job.id))
        return new_evaluation_id()

    def nodes(self) -> list[NodeState]:
        """This node first (as gossip last saw it, for a hybrid's live capacity), then the rest."""
        table = {state.info.node_id: state for state in self.node_table.states()}
        mine = table.pop(self._info.node_id, NodeState(info=self._info))
        return [mine, *table.values()]

    def self_info(self) -> NodeInfo:
        return self._info

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._started_ns = now_ns()
        for job in self._store.active_jobs():
            self._events.put(("evaluate", job.id))
        self._thread = threading.Thread(target=self._run, name="orchestrator", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        self._events.put(("stop", None))
        if self._thread is not None:
            self._thread.join(timeout=10)

    def handle(self, envelope: Envelope) -> None:
        """Bus handler (bus thread): gossip updates the node table, the rest is queued."""
        payload = envelope.payload
        if isinstance(payload, NodeInfoMessage):
            fresh, restarted = self.node_table.on_info(payload.info)
            self.node_table.on_heartbeat(payload.info.node_id, payload.executions)
            if fresh:
                log.info("event=node_joined node=%s", payload.info.node_id)
            if restarted:
                log.warning("event=node_restarted node=%s", payload.info.node_id)
                self._events.put(("node_restarted", payload.info.node_id))
            self._events.put(("nodes_changed", None))
        elif isinstance(payload, Heartbeat):
            self.node_table.on_heartbeat(payload.node_id, payload.executions)
        elif isinstance(payload, ShutdownNotice):
            self.node_table.on_shutdown(payload.node_id)
            self._events.put(("node_left", payload.node_id))
            self._events.put(("nodes_changed", None))
        else:
            self._events.put(("message", envelope))

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        last_sweep = last_audit = time.monotonic()
        while not self._stopping.is_set():
            due: set[str] = set()
            self._queued_checked = False
            try:
                self._collect(self._events.get(timeout=self._next_timeout_s()), due)
                while True:
                    self._collect(self._events.get_nowait(), due)
            except queue.Empty:
                pass
            now = now_ns()
            while self._wakes and self._wakes[0][0] <= now:
                due.add(heapq.heappop(self._wakes)[1])
            if time.monotonic() - last_sweep >= self._config.tick_s:
                last_sweep = time.monotonic()
                if self.node_table.sweep():
                    due.update(job.id for job in self._store.active_jobs())
            if time.monotonic() - last_audit >= self._config.audit_s:
                last_audit = time.monotonic()
                due.update(self._jobs_with_disowned_executions())
            for job_id in sorted(due):
                self._evaluate_safely(job_id)

    def _jobs_with_disowned_executions(self) -> set[str]:
        """Jobs with an execution its node no longer lists (see ``scheduler.disowned``)."""
        reports = self.node_table.reports()
        if not reports:
            return set()
        lost = disowned(self._store.live_executions(), reports, self._config.scheduler)
        return {execution.job_id for execution in lost}

    def _next_timeout_s(self) -> float:
        timeout_s = self._config.tick_s
        if self._wakes:
            timeout_s = min(timeout_s, max(0.0, (self._wakes[0][0] - now_ns()) / 1e9))
        return timeout_s

    def _collect(self, event: tuple[str, object], due: set[str]) -> None:
        kind, value = event
        if kind == "evaluate" and isinstance(value, str):
            due.add(value)
        elif kind == "nodes_changed" and not self._queued_checked:
            self._queued_checked = True
            due.update(
                job.id
                for job in self._store.active_jobs()
                if job.state.state_type == JobStateType.QUEUED or self._settling(job)
            )
        elif kind == "node_left" and isinstance(value, str):
            due.update(e.job_id for e in self._store.live_executions() if e.node_id == value)
        elif kind == "node_restarted" and isinstance(value, str):
            due.update(self._forget_executions_on(value))
        elif kind == "message" and isinstance(value, Envelope):
            job_id = self._on_message(value)
            if job_id:
                due.add(job_id)

    def _forget_executions_on(self, node_id: str) -> set[str]:
        """A restarted node lost its executions: fail them (retryable) so others run them."""
        touched = set()
        for job in self._store.active_jobs():
            for execution in self._store.executions(job.id):
                if execution.node_id == node_id and not execution.state.terminal:
                    try:
                        self._store.update_execution(
                            execution.id,
                            state=S.FAILED,
                            desired=D.STOPPED,
                            message=f"node {node_id} restarted",
                            expect=(execution.state,),
                            details={
                                RETRYABLE: "true",
                                **({NEVER_RAN: "true"} if execution.state in ASKING else {}),
                            },
                        )
                    except StateTransitionError:
                        continue
                    touched.add(job.id)
        return touched

    def _evaluate_safely(self, job_id: str) -> None:
        try:
            self._evaluate(job_id)
        except NotFoundError:
            log.warning("event=evaluate_unknown_job job=%s", job_id)
        except Exception:
            log.exception("event=evaluate_failed job=%s", job_id)

    def _settle_until_ns(self) -> int:
        return self._started_ns + int(self._config.settle_s * 1e9)

    def _settling(self, job: Job) -> bool:
        """Soon after this start the nodes may not have announced themselves yet: true for a
        job from before the start, or for any job while no compute node has spoken."""
        if now_ns() >= self._settle_until_ns():
            return False
        return job.create_time < self._started_ns or not any(
            node.is_compute for node in self.node_table.connected()
        )

    def _evaluate(self, job_id: str) -> None:
        job = self._store.get_job(job_id)
        executions = self._store.executions(job_id)
        nodes = self.node_table.connected()
        config = self._config.scheduler
        away = self.node_table.away(config.away_grace_s)
        reports = self.node_table.reports()
        settle_until_ns = self._settle_until_ns() if self._settling(job) else 0
        announced = self.node_table.announced()
        plan = schedule(
            job,
            executions,
            nodes,
            now_ns(),
            config,
            self._rng,
            away,
            reports,
            settle_until_ns,
            announced,
        )
        if plan.empty and plan.wake_at_ns is None:
            return
        # Only asks need the job's size (and schedule() failed a job whose size is unreadable).
        needs = job_needs(job, config) if plan.ask else Resources()
        self._planner.apply(plan, job, needs)
        if plan.wake_at_ns is not None:
            heapq.heappush(self._wakes, (plan.wake_at_ns, job_id))
        if plan.job_state is not None and plan.job_state.terminal:
            log.info(
                "event=job_ended job=%s state=%s message=%r",
                job_id,
                plan.job_state.value,
                plan.job_message,
            )

    # -- messages from compute nodes -----------------------------------------------------

    def _on_message(self, envelope: Envelope) -> str | None:
        payload = envelope.payload
        try:
            if not self._from_its_node(envelope):
                return None
            if isinstance(payload, BidResult):
                return self._on_bid(envelope.sender, payload)
            if isinstance(payload, ExecutionStarted):
                self._store.update_execution(
                    payload.execution_id, state=S.RUNNING, expect=(S.BID_ACCEPTED,)
                )
                return None
            if isinstance(payload, RunResult):
                return self._on_run_result(payload)
            if isinstance(payload, ComputeError):
                failed = self._store.update_execution(
                    payload.execution_id,
                    state=S.FAILED,
                    desired=D.STOPPED,
                    message=payload.message,
                    expect=(S.BID_ACCEPTED, S.RUNNING, S.PUBLISHING),
                    details={RETRYABLE: "true" if payload.retryable else "false"},
                )
                return failed.job_id
        except (StateTransitionError, NotFoundError) as exc:
            log.info(
                "event=stale_message type=%s sender=%s reason=%r",
                envelope.type,
                envelope.sender,
                str(exc),
            )
            return None
        log.warning("event=unexpected_message type=%s sender=%s", envelope.type, envelope.sender)
        return None

    def _from_its_node(self, envelope: Envelope) -> bool:
        """Only the node an execution was given to may speak for it."""
        execution_id = getattr(envelope.payload, "execution_id", None)
        if not isinstance(execution_id, str):
            return True
        owner = self._store.get_execution(execution_id).node_id
        if owner == envelope.sender:
            return True
        log.warning(
            "event=message_from_wrong_node type=%s execution=%s sender=%s owner=%s",
            envelope.type,
            execution_id,
            envelope.sender,
            owner,
        )
        return False

    def _on_bid(self, sender: str, bid: BidResult) -> str | None:
        execution = self._store.get_execution(bid.execution_id)
        if execution.state != S.ASK_FOR_BID:
            # A bid for an execution that ended (its ask timed out, say) frees the node's
            # reservation; a repeated bid for a live one is a duplicate and changes nothing.
            if bid.accepted and execution.state.terminal:
                reason = f"execution is {execution.state.label}"
                self._planner_send(
                    sender,
                    BidRejected(execution_id=bid.execution_id, job_id=bid.job_id, reason=reason),
                )
            return None
        updated = self._store.update_execution(
            bid.execution_id,
            state=S.ASK_FOR_BID_ACCEPTED if bid.accepted else S.ASK_FOR_BID_REJECTED,
            message=bid.reason or ("bid received" if bid.accepted else "bid refused"),
            expect=(S.ASK_FOR_BID,),
            details={BUSY: "true"} if bid.busy else None,
        )
        return updated.job_id

    def _on_run_result(self, result: RunResult) -> str:
        output = result.run_output
        failed = output.exit_code != 0 or bool(output.error_msg)
        message = "completed"
        if failed:
            message = output.error_msg or f"task exited with code {output.exit_code}"
        execution = self._store.update_execution(
            result.execution_id,
            state=S.FAILED if failed else S.COMPLETED,
            desired=D.STOPPED,
            message=message,
            run_output=output,
            published_result=result.published_result,
            expect=(S.BID_ACCEPTED, S.RUNNING, S.PUBLISHING),
            details={RETRYABLE: "false"} if failed else None,
        )
        return execution.job_id

    def _planner_send(self, node_id: str, message: BidRejected) -> None:
        self._planner.send_to(node_id, message)
