"""The orchestrator: owns every job from submission to its end.

All scheduling runs on one worker thread, fed by a queue of typed events
(:mod:`requester.events`), so job and execution state change in one place, in order. The
API thread only validates and stores new jobs, and marks jobs stopped.

Messages from compute nodes are recorded by :mod:`requester.replies`. The worker works in
passes. A pass takes every event queued, then handles, in this order:
messages from compute nodes (bids and results first: they free room), jobs whose timer is
due, queued jobs that fit the room just freed (:mod:`requester.backlog`), and new
submissions; at most ``PASS_BUDGET`` evaluations, the rest carried to the next pass in
order. Its store writes commit ``PASS_CHUNK`` evaluations to a transaction, and the messages
they plan leave only once it committed.
"""

from __future__ import annotations

import heapq
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from protocol.bookkeeping import Verdict
from protocol.envelope import Envelope
from protocol.errors import NotFoundError, StateTransitionError, ValidationError
from protocol.execution import Execution
from protocol.ids import new_evaluation_id, new_job_id, now_ns
from protocol.job import Job, JobStateType
from protocol.messages import (
    AdoptExecution,
    ExecutionLogs,
    Heartbeat,
    NodeInfoMessage,
    ShutdownNotice,
)
from protocol.node import NodeInfo, NodeReputation, NodeState
from protocol.probes import Probe
from protocol.resources import Resources
from protocol.specs import validate_job
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from requester.accept_probes import AcceptProbes
from requester.backlog import Backlog
from requester.events import (
    EndedElsewhere,
    Evaluate,
    Event,
    ExecutionEnded,
    Inbound,
    NodeLeft,
    NodeRestarted,
    RoomNews,
    Stop,
    StoppedHere,
    TakenOver,
)
from requester.following import Following
from requester.limits import SubmissionLimits, check_limits
from requester.logs import LogRelay, LogRelayConfig
from requester.nodes import NodeTable
from requester.plan import ASKING, ClusterView, SchedulerConfig, is_direct, job_needs
from requester.planner import Held, Outbox, Planner
from requester.replies import Replies
from requester.reputation import Reputations
from requester.room import Ledger, Room
from requester.scheduler import disowned, schedule
from requester.service import SubmitResult
from requester.store import JobStore

log = logging.getLogger("bacalao.requester")

REQUESTER_ID_META = "bacalhau.org/requester.id"
PASS_CHUNK = 64  # evaluations per store transaction
PASS_BUDGET = 512  # evaluations per pass
# Executions of a job taken over whose node may be running them: adopted, not asked again.
ADOPTABLE = frozenset({S.BID_ACCEPTED, S.RUNNING, S.PUBLISHING})
ADOPT_TRIES = 5  # AdoptExecution sent at most this often, an audit interval apart


@dataclass(frozen=True)
class RequesterConfig:
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    disconnect_after_s: float = 15.0
    tick_s: float = 0.25
    audit_s: float = 2.0
    # After a restart, jobs already in the store wait this long for the compute nodes to
    # announce themselves again before "nobody can run it" is believed.
    settle_s: float = 15.0
    limits: SubmissionLimits = field(default_factory=SubmissionLimits)
    logs: LogRelayConfig = field(default_factory=LogRelayConfig)


@dataclass
class _Pass:
    """What one pass was told, sorted by what it asks the worker to do."""

    messages: list[Envelope] = field(default_factory=list)
    submitted: dict[str, None] = field(default_factory=dict)  # ordered set, arrival order
    room: bool = False  # room may have freed: look at the backlog
    census: bool = False  # the set of nodes changed: look at every queued job
    left: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)  # jobs whose lapsed lease this one claimed
    stopped: list[str] = field(default_factory=list)  # jobs stopped through this one's API
    ended: list[str] = field(default_factory=list)  # jobs of this one's another one stopped
    stop: bool = False


class Orchestrator:
    """Implements :class:`requester.service.OrchestratorService` for the API."""

    def __init__(
        self,
        info: NodeInfo,
        store: JobStore,
        outbox: Outbox,
        config: RequesterConfig | None = None,
        rng: random.Random | None = None,
        accept_probes: Sequence[Probe] = (),
    ) -> None:
        """``accept_probes``: the operator's bid accept probes (requester/accept_probes.py);
        with any, every bid waits for approval."""
        self._info = info
        self._store = store
        self._outbox = outbox
        self._config = config or RequesterConfig()
        self._accept: AcceptProbes | None = None
        if accept_probes:
            scheduler = replace(self._config.scheduler, approve_bids=True)
            self._config = replace(self._config, scheduler=scheduler)
            self._accept = AcceptProbes(accept_probes, self._reviewed)
        self._rng = rng or random.Random()
        self.node_table = NodeTable(self._config.disconnect_after_s)
        self._held = Held()
        self._planner = Planner(
            store, self._held, on_placed=self._placed, on_mismatch=self._mismatched
        )
        self._ledger = Ledger()
        self._backlog = Backlog()
        self._rooms: dict[str, Room] | None = None  # the room known, for the chunk under way
        self._events: queue.Queue[Event] = queue.Queue()
        self._wakes: list[tuple[int, str]] = []
        self._wake_at: dict[str, int] = {}  # the latest wake each job asked for
        self._carried: dict[str, None] = {}  # due jobs a pass had no budget left for
        self._room_freed = False  # an execution ended on the worker thread in this pass
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: int | None = None
        self._started_ns = 0
        self._from_before: set[str] = set()  # jobs not ended at start, while settling
        self._stopped_here: set[str] = set()  # stopped through the API, not yet evaluated
        self._ended_elsewhere: set[str] = set()  # stopped through another, not yet evaluated
        # executions adopted whose node has not answered: (node, job, sent at, tries)
        self._adopting: dict[str, tuple[str, str, float, int]] = {}
        self._passes = 0
        self.counts: Counter[str] = Counter()  # asks and their answers, for /metrics
        self.refusals: Counter[str] = Counter()  # refused asks by what refused them
        self._following = Following(store)
        self._replies = Replies(store, self._planner.send_to, self.counts, self.refusals)
        self._evaluations = 0
        self.reputations = Reputations(store.reputations(), store.change_reputation, now_ns)
        store.on_reputation(self.reputations.saved)
        store.on_execution_ended(self._ended)
        # Followers of running executions' output, fed by their nodes (requester/logs.py).
        self.logs = LogRelay(store, outbox, self._config.logs)

    # -- OrchestratorService -------------------------------------------------------------

    @property
    def store(self) -> JobStore:
        return self._store

    def submit(self, job: Job) -> SubmitResult:
        warnings = validate_job(job)
        check_limits(job, self._config.limits)
        job.id = new_job_id()
        job.name = job.name or job.id
        job.meta[REQUESTER_ID_META] = self._info.node_id
        evaluation_id = new_evaluation_id()
        self._store.create_job(job, evaluation_id)
        log.info(
            "event=job_submitted job=%s count=%d engine=%s", job.id, job.count, job.task.engine.type
        )
        self._events.put(Evaluate(job.id))
        return SubmitResult(job_id=job.id, evaluation_id=evaluation_id, warnings=warnings)

    def stop(self, job_id: str, reason: str) -> str:
        job = self._store.get_job(job_id)
        if job.terminal:
            raise ValidationError(
                "id", f"job {job.id} already ended ({job.state.state_type.value})"
            )
        owner = self._store.lease_owner
        holder = self._store.leases.owner(job.id) if owner else None
        try:
            self._store.update_job_state(job.id, JobStateType.STOPPED, reason or "stopped by user")
        except StateTransitionError as exc:
            raise ValidationError("id", str(exc)) from None
        log.info("event=job_stopped job=%s reason=%r", job.id, reason or "stopped by user")
        if holder and holder != owner:
            # Its executions answer to the requester that follows it (compute nodes take a
            # cancel from the requester that asked), which keeps its lease, sees the job
            # ended at its next beat, cancels them and lets the lease go.
            log.info("event=job_stop_passed job=%s owner=%s", job.id, holder)
        else:
            self._events.put(StoppedHere(job.id))
        return new_evaluation_id()

    def nodes(self) -> list[NodeState]:
        """This node first (as gossip last saw it, for a hybrid's live capacity), then the rest."""
        table = {state.info.node_id: state for state in self.node_table.states()}
        mine = table.pop(self._info.node_id, NodeState(info=self._info))
        return [self._with_reputation(state) for state in (mine, *table.values())]

    def _with_reputation(self, state: NodeState) -> NodeState:
        reputation = self.reputations.get(state.info.node_id)
        if reputation is None:
            return state
        now = reputation.decayed(now_ns())
        shown = NodeReputation(score=now.score, completed=now.completed, failed=now.failed)
        return state.model_copy(update={"reputation": shown})

    def self_info(self) -> NodeInfo:
        return self._info

    def debug(self) -> dict[str, Any]:
        """Counters of the store and of the worker, for benchmarks and operators."""
        return {
            "Store": self._store.stats(),
            "Orchestrator": {
                "Passes": self._passes,
                "Evaluations": self._evaluations,
                "Queued": len(self._backlog),
                "Carried": len(self._carried),
                "Placed": self._ledger.live_count(),
                "Events": self._events.qsize(),
                "Adopting": len(self._adopting),
            },
        }

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._started_ns = now_ns()
        resumed = self._following.jobs(self._store.job_ids())
        self._from_before = set(resumed)
        for job_id in resumed:
            self._events.put(Evaluate(job_id))
        self._thread = threading.Thread(target=self._run, name="orchestrator", daemon=True)
        self._thread.start()
        self.logs.start()

    def close(self) -> None:
        self.logs.close()
        self._stopping.set()
        self._events.put(Stop())
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._accept is not None:
            self._accept.close()

    def _reviewed(self, job_id: str) -> None:
        """An accept probe answered about a bid for the job (a probe thread)."""
        self._events.put(Evaluate(job_id))

    def handle(self, envelope: Envelope) -> None:
        """Bus handler (bus thread): gossip updates the node table, the rest is queued."""
        payload = envelope.payload
        if isinstance(payload, NodeInfoMessage):
            node_id = payload.info.node_id
            fresh, restarted, news = self.node_table.on_info(payload.info, payload.using)
            self.node_table.on_heartbeat(node_id, payload.executions)
            if fresh:
                log.info("event=node_joined node=%s", node_id)
            if restarted:
                log.warning("event=node_restarted node=%s", node_id)
                self._events.put(NodeRestarted(node_id))
            if news or self._waiting_for_room():
                self._events.put(RoomNews(node_id, joined=fresh))
        elif isinstance(payload, Heartbeat):
            self.node_table.on_heartbeat(payload.node_id, payload.executions)
        elif isinstance(payload, ShutdownNotice):
            self.node_table.on_shutdown(payload.node_id)
            self._events.put(NodeLeft(payload.node_id))
        elif isinstance(payload, ExecutionLogs):
            self.logs.handle(envelope.sender, payload)  # output, not state: no pass needed
        else:
            self._events.put(Inbound(envelope))

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        self._worker = threading.get_ident()
        last_sweep = last_audit = time.monotonic()
        while not self._stopping.is_set():
            work = self._take_events()
            if work.stop:
                return
            due: dict[str, None] = {}
            if time.monotonic() - last_sweep >= self._config.tick_s:
                last_sweep = time.monotonic()
                lost = self.node_table.sweep()
                for node_id in lost:
                    self._ledger.forget_node(node_id)
                if lost:
                    due.update(dict.fromkeys(self._following.jobs(self._store.job_ids())))
            if time.monotonic() - last_audit >= self._config.audit_s:
                last_audit = time.monotonic()
                due.update(dict.fromkeys(sorted(self._jobs_with_disowned_executions())))
                self._adopt_again(last_audit)
            try:
                self._pass(work, due)
            except Exception:  # a failed commit, say: log it, the next pass starts afresh
                log.exception("event=pass_failed")
                self._held.take()

    def _take_events(self) -> _Pass:
        """Wait for the first event (or the next timer), then take all queued with it."""
        work = _Pass()
        timeout_s = 0.0 if self._carried else self._next_timeout_s()
        try:
            self._collect(self._events.get(timeout=timeout_s), work)
            while True:
                self._collect(self._events.get_nowait(), work)
        except queue.Empty:
            pass
        return work

    def _collect(self, event: Event, work: _Pass) -> None:
        if isinstance(event, Evaluate):
            work.submitted[event.job_id] = None
        elif isinstance(event, Inbound):
            work.messages.append(event.envelope)
        elif isinstance(event, RoomNews):
            work.room = True
            work.census = work.census or event.joined
        elif isinstance(event, ExecutionEnded):
            self._ledger.ended(event.execution_id)
            work.room = True
        elif isinstance(event, NodeLeft):
            work.left.append(event.node_id)
            work.census = True
        elif isinstance(event, NodeRestarted):
            work.restarted.append(event.node_id)
        elif isinstance(event, TakenOver):
            work.taken.extend(event.job_ids)
        elif isinstance(event, StoppedHere):
            work.stopped.append(event.job_id)
        elif isinstance(event, EndedElsewhere):
            work.ended.extend(event.job_ids)
        elif isinstance(event, Stop):
            work.stop = True

    def _pass(self, work: _Pass, due: dict[str, None]) -> None:
        self._passes += 1
        replied: dict[str, None] = {}
        for start in range(0, len(work.messages), PASS_CHUNK):
            with self._store.batch():
                for envelope in work.messages[start : start + PASS_CHUNK]:
                    self._heard(envelope)
                    job_id = self._replies.handle(envelope)
                    if job_id:
                        replied[job_id] = None
            self._send_held()
        if work.taken:
            with self._store.batch():
                for job_id in work.taken:
                    self._adopt_orphans_of(job_id)
                    replied[job_id] = None
            self._send_held()
        if work.left or work.restarted:
            with self._store.batch():
                for node_id in work.restarted:
                    self._ledger.forget_node(node_id)
                    replied.update(dict.fromkeys(sorted(self._forget_executions_on(node_id))))
                for node_id in work.left:
                    self._ledger.forget_node(node_id)
                    replied.update(
                        dict.fromkeys(
                            e.job_id
                            for e in self._following.live_executions()
                            if e.node_id == node_id
                        )
                    )
            self._send_held()
        now = now_ns()
        while self._wakes and self._wakes[0][0] <= now:
            at, job_id = heapq.heappop(self._wakes)
            if self._wake_at.get(job_id) == at:
                del self._wake_at[job_id]
                due[job_id] = None
        if work.census:
            self._backlog.open_to_all()
        room = work.room or self._room_freed or bool(replied)
        self._room_freed = False
        # Stops to carry out go first (cheap, and they free room); until evaluated, a job
        # stopped through this API is acted on without a lease, and one another requester
        # stopped keeps this one's lease, released once its executions are cancelled.
        self._stopped_here.update(work.stopped)
        self._ended_elsewhere.update(work.ended)
        order = dict.fromkeys([*work.stopped, *work.ended])
        order.update({**replied, **self._carried, **due})
        if room and self._backlog:
            rooms = self._ledger.rooms(self.node_table.capacity_reports())
            order.update(dict.fromkeys(self._backlog.due(rooms, PASS_BUDGET)))
        if work.census or (work.room and now < self._settle_until_ns()):
            order.update(dict.fromkeys(self._queued_jobs(everything=work.census)))
        order.update(work.submitted)
        # A job another requester follows is left to it, whatever brought it here (a late
        # message, a wake, the backlog).
        jobs = self._following.jobs(order, also=self._stopped_here)
        self._carried = dict.fromkeys(jobs[PASS_BUDGET:])
        evaluated = jobs[:PASS_BUDGET]
        self._evaluate_all(evaluated)
        done = set(evaluated)
        released = sorted(self._ended_elsewhere & done)
        if released:  # the stops are carried out: nobody follows those jobs now
            self._store.leases.release(self._store.lease_owner, released)
        self._ended_elsewhere -= done
        self._stopped_here -= done

    def _queued_jobs(self, everything: bool) -> Iterable[str]:
        """Jobs a change of nodes may unblock: every queued job when the set of nodes
        changed; while settling after a start, those from before it, or every job not ended
        while no compute node has spoken (see ``_settling``). Read as IDs: a backlog of
        thousands must not be parsed on every pass."""
        if everything:
            yield from self._following.jobs(self._store.job_ids((JobStateType.QUEUED,)))
        if now_ns() >= self._settle_until_ns():
            self._from_before = set()
            return
        if not self.node_table.any_compute_connected():
            yield from self._following.jobs(self._store.job_ids())
            return
        if self._from_before:
            still = self._following.jobs(self._store.job_ids())
            self._from_before.intersection_update(still)
            yield from (job_id for job_id in still if job_id in self._from_before)

    def _evaluate_all(self, jobs: list[str]) -> None:
        for start in range(0, len(jobs), PASS_CHUNK):
            with self._store.batch():
                self._rooms = self._ledger.rooms(self.node_table.capacity_reports())
                try:
                    for job_id in jobs[start : start + PASS_CHUNK]:
                        self._evaluate_safely(job_id)
                finally:
                    self._rooms = None
            self._send_held()

    def _send_held(self) -> None:
        """The chunk committed: its messages may leave."""
        messages = self._held.take()
        if messages:
            self._outbox.send_all(messages)

    def _placed(self, node_id: str, execution_id: str, needs: Resources) -> None:
        self.counts["asked"] += 1
        self._ledger.placed(node_id, execution_id, needs)
        rooms = self._rooms
        if rooms is not None and node_id in rooms:
            rooms[node_id] = rooms[node_id].plus(needs, -1)

    def _mismatched(self, execution: Execution) -> None:
        """Planner listener: a completed execution's result lost a verified job's vote."""
        self.reputations.record(execution)

    def _ended(self, execution: Execution) -> None:
        """Store listener: an execution ended, its room is free again, and what it says of
        its node counts in the node's reputation."""
        self.reputations.record(execution)
        self._adopting.pop(execution.id, None)
        if threading.get_ident() == self._worker:
            self._ledger.ended(execution.id)
            self._room_freed = True
        else:
            self._events.put(ExecutionEnded(execution.id))

    def take_over(self, taken: Sequence[str], resumed: Sequence[str] = ()) -> None:
        """Follow these jobs from now on: their lapsed leases are this requester's now
        (:class:`~requester.lease_keeper.LeaseKeeper` claimed them), ``taken`` from another
        requester, ``resumed`` from this one's own earlier run."""
        if taken:
            log.info("event=jobs_taken_over count=%d", len(taken))
            self._events.put(TakenOver(tuple(taken)))
        for job_id in resumed:
            self._events.put(Evaluate(job_id))

    def ended_elsewhere(self, job_ids: Sequence[str]) -> None:
        """These jobs, which this requester follows, were ended by another (see
        :class:`EndedElsewhere`)."""
        if job_ids:
            self._events.put(EndedElsewhere(tuple(job_ids)))

    def _adopt_orphans_of(self, job_id: str) -> None:
        """A job taken over from a requester that stopped renewing its lease: its live
        executions answer to that requester (compute nodes reply to whoever asked). One that
        runs, or may (a direct ask), is adopted: its node is told to answer here from now on,
        and says where the run stands (a node that does not run it says so, and the job asks
        again). The rest (asks not yet decided, bids waiting for an accept) are cancelled
        here, not counted against their nodes or the job's attempts; the caller evaluates
        the job, which asks again for them."""
        live = [e for e in self._store.executions(job_id) if not e.state.terminal]
        taker = self._info.node_id
        adopted = [
            e for e in live if e.state in ADOPTABLE or (e.state == S.ASK_FOR_BID and is_direct(e))
        ]
        for execution in adopted:
            try:
                self._store.update_execution(
                    execution.id,
                    message=f"{taker} took the job over; {execution.node_id} answers it now",
                    expect=(execution.state,),
                )
            except StateTransitionError:
                continue  # it moved on since it was read: the evaluation sees what it is
            self._adopt(execution.node_id, execution.id, job_id, tries=1)
        self._end_executions(
            [e for e in live if e not in adopted],
            S.CANCELLED,
            lambda e: (
                f"the requester that asked {e.node_id} stopped following the job; "
                f"{taker} took it over"
            ),
        )

    def _adopt(self, node_id: str, execution_id: str, job_id: str, tries: int) -> None:
        self._adopting[execution_id] = (node_id, job_id, time.monotonic(), tries)
        self._planner.send_to(node_id, AdoptExecution(execution_id=execution_id, job_id=job_id))

    def _heard(self, envelope: Envelope) -> None:
        """A word from a node about an execution this requester adopted: it was told."""
        execution_id = getattr(envelope.payload, "execution_id", None)
        adopting = self._adopting.get(execution_id) if isinstance(execution_id, str) else None
        if adopting is not None and adopting[0] == envelope.sender:
            self._adopting.pop(str(execution_id), None)

    def _adopt_again(self, now_s: float) -> None:
        """An adoption its node has not answered within an audit interval was lost (the bus
        only promises its timeouts): tell the node again, up to ``ADOPT_TRIES`` times. Past
        that, or once the node no longer lists the execution, the audit's disowned check
        ends it and the job asks again."""
        for execution_id, (node_id, job_id, sent_s, tries) in list(self._adopting.items()):
            if now_s - sent_s < self._config.audit_s:
                continue
            if tries >= ADOPT_TRIES:
                self._adopting.pop(execution_id, None)
                continue
            self._adopt(node_id, execution_id, job_id, tries + 1)
        self._send_held()

    def _jobs_with_disowned_executions(self) -> set[str]:
        """Jobs with an execution its node no longer lists (see ``scheduler.disowned``)."""
        reports = self.node_table.reports()
        if not reports:
            return set()
        lost = disowned(self._following.live_executions(), reports, self._config.scheduler)
        return {execution.job_id for execution in lost}

    def _next_timeout_s(self) -> float:
        timeout_s = self._config.tick_s
        if self._wakes:
            timeout_s = min(timeout_s, max(0.0, (self._wakes[0][0] - now_ns()) / 1e9))
        return timeout_s

    def _forget_executions_on(self, node_id: str) -> set[str]:
        """A restarted node lost its executions: fail them (retryable) so others run them."""
        lost = [e for e in self._following.live_executions() if e.node_id == node_id]
        return self._end_executions(
            lost,
            S.FAILED,
            lambda _: f"node {node_id} restarted",
            lambda e: Verdict(retryable=True, never_ran=e.state in ASKING),
        )

    def _end_executions(
        self,
        executions: Iterable[Execution],
        state: S,
        message: Callable[[Execution], str],
        verdict: Callable[[Execution], Verdict] | None = None,
    ) -> set[str]:
        """Move each of ``executions`` to ``state`` (stopped), each a compare-and-set on the
        state it was read in (one that changed since is left to the evaluation, which sees
        what it is now); the jobs of those moved."""
        touched = set()
        for execution in executions:
            try:
                self._store.update_execution(
                    execution.id,
                    state=state,
                    desired=D.STOPPED,
                    message=message(execution),
                    expect=(execution.state,),
                    verdict=None if verdict is None else verdict(execution),
                )
            except StateTransitionError:
                continue
            touched.add(execution.job_id)
        return touched

    def _evaluate_safely(self, job_id: str) -> None:
        self._evaluations += 1
        try:
            self._evaluate(job_id)
        except NotFoundError:
            log.warning("event=evaluate_unknown_job job=%s", job_id)
            self._backlog.discard(job_id)
        except Exception:
            log.exception("event=evaluate_failed job=%s", job_id)

    def _waiting_for_room(self) -> bool:
        """Whether a job may be waiting for a node to announce itself (bus thread: a read of
        the backlog's size). When none is, an announcement that repeats the last one needs
        no pass: at 1,000 idle nodes, a pass for every one of them was most of gossip's
        cost."""
        return bool(self._backlog) or bool(self._carried) or now_ns() < self._settle_until_ns()

    def _settle_until_ns(self) -> int:
        return self._started_ns + int(self._config.settle_s * 1e9)

    def _settling(self, job: Job) -> bool:
        """Soon after this start the nodes may not have announced themselves yet: true for a
        job from before the start, or for any job while no compute node has spoken."""
        if now_ns() >= self._settle_until_ns():
            return False
        return job.create_time < self._started_ns or not self.node_table.any_compute_connected()

    def _evaluate(self, job_id: str) -> None:
        job = self._store.get_job(job_id)
        executions = self._store.executions(job_id)
        nodes = self.node_table.connected()
        config = self._config.scheduler
        away = self.node_table.away(config.away_grace_s)
        reports = self.node_table.reports()
        settle_until_ns = self._settle_until_ns() if self._settling(job) else 0
        announced = self.node_table.announced()
        view = ClusterView(
            away=away,
            reports=reports,
            settle_until_ns=settle_until_ns,
            announced=announced,
            room=self._rooms,
            reputation=self.reputations.scores,
        )
        vetoes = None if self._accept is None else self._accept.vetoes(job.id)
        plan = schedule(job, executions, nodes, now_ns(), config, self._rng, view, vetoes)
        if self._accept is not None:
            self._accept.review(job, plan, executions, nodes)
        if plan.wait_for_room:
            eligible = frozenset(plan.eligible)
            self._backlog.wait(job.id, job.priority, job_needs(job, config), eligible)
        else:
            self._backlog.discard(job.id)
        if plan.wake_at_ns is None:
            self._wake_at.pop(job_id, None)
        elif self._wake_at.get(job_id) != plan.wake_at_ns:
            self._wake_at[job_id] = plan.wake_at_ns
            heapq.heappush(self._wakes, (plan.wake_at_ns, job_id))
        if plan.empty:
            return
        # Only asks need the job's size (and schedule() failed a job whose size is unreadable).
        needs = job_needs(job, config) if plan.ask else Resources()
        self._planner.apply(plan, job, needs)
        if plan.job_state is not None and plan.job_state.terminal:
            log.debug(  # the store logs the state change itself at INFO
                "event=job_ended job=%s state=%s message=%r",
                job_id,
                plan.job_state.value,
                plan.job_message,
            )
