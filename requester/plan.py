"""What the scheduler decides for one job (:class:`Plan`), what it is configured with, what
the requester knows of its nodes when it decides (:class:`ClusterView`), and the edits to a
plan that fail, queue or wake a job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from protocol.bookkeeping import NOT_QUEUED, Queueing
from protocol.execution import Execution
from protocol.job import Job, JobStateType
from protocol.node import NodeInfo
from protocol.resources import Resources
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from requester.room import Room

ASKING = (S.ASK_FOR_BID, S.ASK_FOR_BID_ACCEPTED)


@dataclass(frozen=True)
class SchedulerConfig:
    # 1: place each execution on a node known to have room, which starts it at once
    # (AskForBid with WaitForApproval false). More: ask Count x over_ask nodes, each reserving
    # until the requester accepts the first Count positive bids in rank order.
    over_ask: int = 1
    # Every bid waits for the requester's approval, even with over_ask 1: bid accept probes
    # (requester/accept_probes.py) must see a bid before its run starts.
    approve_bids: bool = False
    bid_timeout_s: float = 10.0
    default_queue_timeout_s: float = 600.0
    max_attempts_per_count: int = 3
    queue_backoff_s: float = 1.0
    queue_backoff_max_s: float = 15.0
    away_grace_s: float = 300.0
    lost_execution_grace_s: float = 10.0
    default_job_resources: Resources = field(
        default_factory=lambda: Resources(cpu=0.1, memory=64 * 1024**2)
    )


@dataclass
class Plan:
    """What to do for one job. Applied by the planner, in this order."""

    job_id: str
    fail: list[tuple[str, str]] = field(default_factory=list)
    accept: list[str] = field(default_factory=list)
    reject: list[tuple[str, str]] = field(default_factory=list)
    cancel: list[tuple[str, str]] = field(default_factory=list)
    ask: list[NodeInfo] = field(default_factory=list)
    job_state: JobStateType | None = None
    job_message: str = ""
    queueing: Queueing = NOT_QUEUED  # the job's bookkeeping with job_state (Queued only)
    wake_at_ns: int | None = None
    direct: bool = False  # asks start the run at once when the node has room
    # Nodes that could take an execution of the job (filters passed, none of it yet): a
    # queued job is looked at again when one of them has room for it.
    eligible: tuple[str, ...] = ()
    # Every able node is known to be full: the job waits in the requester's queue for room
    # (a result, a node's announcement), not for a timer.
    wait_for_room: bool = False
    # Why each asked node: its rank among the able ones, its scores, who was skipped.
    why: dict[str, str] = field(default_factory=dict)
    # A verified job's completed executions whose result lost the vote, and why.
    mismatched: list[tuple[str, str]] = field(default_factory=list)
    # An execution of the job has run: a job that ends without having been seen Running (a
    # short run reports only its result) passes through Running on the way.
    ran: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.fail
            or self.accept
            or self.reject
            or self.cancel
            or self.ask
            or self.job_state
            or self.mismatched
        )


@dataclass(frozen=True)
class NodeReport:
    """What a compute node said it holds, in its latest heartbeat, and when that came in."""

    at_ns: int
    executions: frozenset[str]


NO_REPORTS: Mapping[str, NodeReport] = {}


NO_NEWS: Mapping[str, int] = {}


@dataclass(frozen=True)
class ClusterView:
    """What the requester knows of its compute nodes besides which are connected.

    ``away`` went silent lately and may come back, so a job only they could run waits
    (until its queue timeout) instead of failing. ``reports``: what each node last said it
    holds. Until ``settle_until_ns`` (a requester that restarted with this job, before every
    node has announced itself again) a job nobody can run yet is looked at again later, not
    failed. ``announced`` says when each node last announced itself: a node that refused as
    busy and announced since may have room now, and is asked again without waiting for a new
    round. ``room`` says how much each node has free (see :mod:`requester.room`): a node
    known to lack room for the job is not asked; the job waits, queued, for room to free.
    ``reputation`` is each node's score (requester/reputation.py): it ranks nodes.
    """

    away: Sequence[NodeInfo] = ()
    reports: Mapping[str, NodeReport] = field(default_factory=lambda: NO_REPORTS)
    settle_until_ns: int = 0
    announced: Mapping[str, int] = field(default_factory=lambda: NO_NEWS)
    room: Mapping[str, Room] | None = None
    reputation: Mapping[str, float] | None = None


NOTHING_MORE = ClusterView()  # connected nodes are all the requester knows of


def job_needs(job: Job, config: SchedulerConfig) -> Resources:
    return job.task.resources.parsed().with_defaults(config.default_job_resources)


def is_direct(execution: Execution) -> bool:
    """Asked to start at once (no approval round): it counts as placed until answered."""
    return execution.state == S.ASK_FOR_BID and execution.desired_state.state_type == D.RUNNING


def is_retryable(execution: Execution) -> bool:
    return execution.verdict.retryable


def wake(plan: Plan, at_ns: int) -> None:
    plan.wake_at_ns = at_ns if plan.wake_at_ns is None else min(plan.wake_at_ns, at_ns)


def fail_job(plan: Plan, live: Sequence[Execution], message: str) -> None:
    """Fail the job: what runs is cancelled, and bids (even those this plan would have
    accepted) are rejected, so no node keeps a reservation or a run for a failed job."""
    plan.job_state = JobStateType.FAILED
    plan.job_message = message
    plan.accept = []
    rejected = {execution_id for execution_id, _ in plan.reject}
    plan.reject.extend(
        (e.id, "job failed")
        for e in live
        if e.state == S.ASK_FOR_BID_ACCEPTED and e.id not in rejected
    )
    cancelled = {execution_id for execution_id, _ in plan.cancel}
    plan.cancel.extend(
        (e.id, "job failed")
        for e in live
        if e.state != S.ASK_FOR_BID_ACCEPTED and e.id not in cancelled
    )


def wait_for_room(
    plan: Plan, now_ns: int, queued_since: int, queue_timeout_s: float, message: str
) -> None:
    """Queue the job until a node has room; woken for its queue timeout only."""
    plan.wait_for_room = True
    plan.job_state = JobStateType.QUEUED
    plan.job_message = message
    plan.queueing = Queueing(since_ns=queued_since)
    wake(plan, queued_since + int(queue_timeout_s * 1e9) + 1)


def queue_job(
    plan: Plan, job: Job, now_ns: int, config: SchedulerConfig, queued_since: int, message: str
) -> None:
    """Queue the job until its next round. A round already set is kept: evaluations in
    between (capacity news) must not push it back, nor count as retries."""
    round_start, prev_round, retries = (
        job.queueing.round_ns,
        job.queueing.prev_round_ns,
        job.queueing.retries,
    )
    if job.state.state_type != JobStateType.QUEUED or round_start <= now_ns:
        backoff_s = min(config.queue_backoff_s * 2 ** min(retries, 32), config.queue_backoff_max_s)
        prev_round, round_start = round_start, now_ns + int(backoff_s * 1e9)
        retries += 1
    plan.job_state = JobStateType.QUEUED
    plan.job_message = message
    plan.queueing = Queueing(queued_since, round_start, prev_round, retries)
    wake(plan, round_start)
