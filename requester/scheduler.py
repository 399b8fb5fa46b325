"""The batch scheduler, pure: a job, its executions and the nodes in, a :class:`Plan` out.

Bidding follows DESIGN.md: ask ``Count x over_ask`` of the ranked candidates, accept the first
``Count`` positive bids *in rank order* (asks are created in rank order, so creation order is
rank order), reject the rest; a bid that never arrives times out and the next node is asked.
With too few nodes the job is Queued and retried with backoff until its queue timeout, then
Failed with a reason naming what the nodes lacked.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from protocol.bookkeeping import NOT_QUEUED, Queueing
from protocol.errors import ValidationError
from protocol.execution import Execution
from protocol.job import Job, JobStateType
from protocol.node import NodeInfo
from protocol.resources import Resources
from protocol.selectors import preferences
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from protocol.verification import verification
from requester.room import Room
from requester.selection import Selection, select, source_types
from requester.verifier import hash_of, verify

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
class Wait:
    """Where a job stands when more nodes must be asked."""

    needed: int  # executions still to start
    undecided: int  # asks still out
    lost: bool  # an execution was lost, or a silent node could run the job: it may come back
    settle_until_ns: int  # nodes may not have announced themselves yet: decide nothing before
    announced: Mapping[str, int]  # when each node last announced itself
    room: Mapping[str, Room] | None  # each node's room as the requester knows it (None: unknown)
    placed: frozenset[str]  # direct asks not yet answered: they hold their node's room
    needs: Resources  # the job's size, defaults filled in (job_needs)
    reputation: Mapping[str, float] = field(default_factory=dict)  # node -> score (0, 1)
    vetoes: Mapping[str, str] = field(default_factory=dict)  # node -> why a probe said no


@dataclass(frozen=True)
class NodeReport:
    """What a compute node said it holds, in its latest heartbeat, and when that came in."""

    at_ns: int
    executions: frozenset[str]


NO_REPORTS: Mapping[str, NodeReport] = {}
NO_NEWS: Mapping[str, int] = {}


def disowned(
    executions: Sequence[Execution], reports: Mapping[str, NodeReport], config: SchedulerConfig
) -> list[Execution]:
    """Live executions their node no longer lists, though it reported well after they last
    changed: a BidAccepted, RunResult or ComputeError was lost on the way (a broker that
    restarted empty, say). A direct ask counts too (a short run's RunResult is its only
    answer); asks awaiting a bid are left to the bid timeout."""
    grace_ns = int(config.lost_execution_grace_s * 1e9)
    lost = []
    for execution in executions:
        if execution.state.terminal or (
            execution.state == S.ASK_FOR_BID and not is_direct(execution)
        ):
            continue
        report = reports.get(execution.node_id)
        if report is None or report.at_ns <= execution.modify_time + grace_ns:
            continue
        if execution.id not in report.executions:
            lost.append(execution)
    return lost


def job_needs(job: Job, config: SchedulerConfig) -> Resources:
    return job.task.resources.parsed().with_defaults(config.default_job_resources)


def is_direct(execution: Execution) -> bool:
    """Asked to start at once (no approval round): it counts as placed until answered."""
    return execution.state == S.ASK_FOR_BID and execution.desired_state.state_type == D.RUNNING


def _has_run(execution: Execution) -> bool:
    """It started on its node: running now, or ended with what its run gave."""
    if execution.state in (S.RUNNING, S.PUBLISHING, S.COMPLETED):
        return True
    return execution.state == S.FAILED and execution.run_output is not None


def _is_retryable(execution: Execution) -> bool:
    return execution.verdict.retryable


def _wake(plan: Plan, at_ns: int) -> None:
    plan.wake_at_ns = at_ns if plan.wake_at_ns is None else min(plan.wake_at_ns, at_ns)


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


def schedule(
    job: Job,
    executions: Sequence[Execution],
    nodes: Sequence[NodeInfo],
    now_ns: int,
    config: SchedulerConfig,
    rng: random.Random,
    view: ClusterView = NOTHING_MORE,
    vetoes: Mapping[str, str] | None = None,
) -> Plan:
    """The plan for ``job`` now: ``nodes`` are connected, ``view`` the rest the requester
    knows of them (:class:`ClusterView`); ``vetoes``: nodes a bid accept probe said no to
    for this job, never asked again for it."""
    away, reports, announced = view.away, view.reports, view.announced
    settle_until_ns, room, reputation = view.settle_until_ns, view.room, view.reputation
    plan = Plan(job_id=job.id, ran=any(_has_run(e) for e in executions))
    connected = {node.node_id for node in nodes}
    live = [e for e in executions if not e.state.terminal]
    if job.terminal:
        plan.cancel = [(e.id, f"job {job.state.state_type.value.lower()}") for e in live]
        return plan

    try:
        needs = job_needs(job, config)
        source_types(job)
    except ValueError as exc:  # stored before today's bounds: it cannot be placed anywhere
        _fail(plan, live, f"Tasks[0].Resources: {exc}")
        return plan
    except ValidationError as exc:  # stored before today's rules for its specs
        _fail(plan, live, f"{exc.field}: {exc.problem}")
        return plan
    bid_deadline_ns = now_ns - int(config.bid_timeout_s * 1e9)
    failed_now: set[str] = set()
    gone = {e.id for e in disowned(live, reports, config)}
    settling = now_ns < settle_until_ns
    for execution in live:
        if execution.node_id not in connected and settling:
            _wake(plan, settle_until_ns)  # its node may not have announced itself yet
        elif execution.node_id not in connected:
            plan.fail.append((execution.id, f"node {execution.node_id} disconnected"))
            failed_now.add(execution.id)
        elif execution.id in gone:
            why = f"node {execution.node_id} no longer has it (a message was lost)"
            plan.fail.append((execution.id, why))
            failed_now.add(execution.id)
        elif execution.state == S.ASK_FOR_BID and execution.modify_time < bid_deadline_ns:
            plan.fail.append((execution.id, f"no bid from {execution.node_id} in time"))
            failed_now.add(execution.id)
    lost_now = [e for e in live if e.id in failed_now and e.state not in ASKING]
    live = [e for e in live if e.id not in failed_now]

    completed = [e for e in executions if e.state == S.COMPLETED]
    final_failures = [e for e in executions if e.state == S.FAILED and not _is_retryable(e)]
    if final_failures:
        failure = final_failures[0]
        plan.cancel = [(e.id, "job failed") for e in live]
        plan.job_state = JobStateType.FAILED
        plan.job_message = (
            f"execution {failure.id} on {failure.node_id} failed: {failure.compute_state.message}"
        )
        return plan
    if len(completed) >= job.count and verification(job):
        verdicts = verify(completed)
        if verdicts.disagreement:
            _fail(plan, live, f"verification failed: {verdicts.disagreement}")
            return plan
        plan.mismatched = [
            (e.id, f"result {hash_of(e)} differs from the majority's {verdicts.majority}")
            for e in verdicts.mismatched
            if not e.verdict.mismatched
        ]
    if len(completed) >= job.count:
        plan.reject = [
            (e.id, "job already completed") for e in live if e.state == S.ASK_FOR_BID_ACCEPTED
        ]
        plan.cancel = [
            (e.id, "job already completed") for e in live if e.state != S.ASK_FOR_BID_ACCEPTED
        ]
        plan.job_state = JobStateType.COMPLETED
        return plan

    # An attempt is an execution that was accepted and then failed; an ask that timed out or
    # was lost is not one (over-asking would spend the budget), the queue timeout bounds those.
    tried = [e for e in executions if e.state == S.FAILED and not e.verdict.never_ran]
    attempts = len(tried) + len(lost_now)
    if attempts >= config.max_attempts_per_count * job.count:
        reasons = "; ".join(
            [f"{e.node_id}: {e.compute_state.message}" for e in tried]
            + [f"{e.node_id}: {why}" for e_id, why in plan.fail for e in lost_now if e.id == e_id]
        )
        plan.cancel = [(e.id, "job failed") for e in live]
        plan.job_state = JobStateType.FAILED
        plan.job_message = f"gave up after {attempts} failed attempts ({reasons})"
        return plan

    placed = frozenset(e.id for e in live if is_direct(e))
    active = [e for e in live if e.state.active or e.id in placed]
    needed = job.count - len(completed) - len(active)
    asking = [e for e in live if e.state in ASKING and e.id not in placed]
    waiting_on_better = False
    undecided = 0
    for execution in asking:
        if execution.state == S.ASK_FOR_BID:
            waiting_on_better = True
            undecided += 1
        elif needed > 0 and not waiting_on_better:
            plan.accept.append(execution.id)
            needed -= 1
        elif needed > 0:
            undecided += 1
        else:
            plan.reject.append((execution.id, "enough bids accepted"))
    if needed <= 0:
        plan.cancel.extend(
            (e.id, "enough bids accepted") for e in asking if e.state == S.ASK_FOR_BID
        )
    # A queued job stays Queued (its round, retries and queue timeout kept) until it has
    # every execution it needs; a partly placed job shows Queued, as on its first round.
    if (active or plan.accept) and (job.state.state_type != JobStateType.QUEUED or needed <= 0):
        plan.job_state = JobStateType.RUNNING
    for execution in live:
        if execution.state == S.ASK_FOR_BID and execution.node_id in connected:
            _wake(plan, execution.modify_time + int(config.bid_timeout_s * 1e9) + 1)
    if needed <= 0:
        return plan

    lost = bool(failed_now)
    lost = lost or bool(select(job, away, {}, rng, needs).ranked)
    wait = Wait(
        needed,
        undecided,
        lost,
        settle_until_ns if settling else 0,
        announced,
        room,
        placed,
        needs,
        reputation or {},
        vetoes or {},
    )
    _plan_asks(plan, job, executions, live, nodes, now_ns, config, rng, wait)
    return plan


def _plan_asks(
    plan: Plan,
    job: Job,
    executions: Sequence[Execution],
    live: Sequence[Execution],
    nodes: Sequence[NodeInfo],
    now_ns: int,
    config: SchedulerConfig,
    rng: random.Random,
    wait: Wait,
) -> None:
    """Ask more nodes, or queue the job, or fail it when nobody ever could run it."""
    needed, undecided = wait.needed, wait.undecided
    # Refusals count within the current round. Between rounds (a queued job looked at again
    # on capacity news) that is the round that was tried last, so nodes that refused it are
    # not asked again before the next one starts.
    window_start = job.queueing.round_ns
    if now_ns < window_start:
        window_start = job.queueing.prev_round_ns
    # A node runs at most one execution of a job: never ask one that holds a live execution or
    # already completed one, whatever the round.
    # Executions this plan fails (lost, or an ask that timed out) have ended: their node is
    # not asked again this round, and their reason is its answer.
    failing = dict(plan.fail)
    holders = {
        e.node_id
        for e in executions
        if (not e.state.terminal and e.id not in failing) or e.state == S.COMPLETED
    }
    refused = {e.node_id: failing[e.id] for e in executions if e.id in failing}
    busy_nodes = holders | set(refused)
    any_busy = wait.lost
    for execution in executions:
        if execution.create_time >= window_start and execution.state.terminal:
            busy = execution.verdict.busy
            if execution.state != S.COMPLETED:
                refused[execution.node_id] = execution.compute_state.message
                any_busy |= busy or _is_retryable(execution)
            # Busy then, but it has announced itself since: it may have room now.
            if busy and wait.announced.get(execution.node_id, 0) > execution.modify_time:
                continue
            busy_nodes.add(execution.node_id)
    previous: dict[str, int] = {}
    for execution in executions:
        previous[execution.node_id] = previous.get(execution.node_id, 0) + 1
    selection = _sample(job, nodes, previous, rng, wait, busy_nodes, config)
    # Waiting may help: nodes were busy or lost, the job asked to queue, or it is queued.
    may_wait = (
        any_busy
        or job.task.timeouts.queue_timeout > 0
        or job.state.state_type == JobStateType.QUEUED
        or any(e.state == S.FAILED and _is_retryable(e) for e in executions)
        or wait.settle_until_ns > 0
    )
    # Able nodes that run or ran this job can never take another execution: with too few
    # others (nodes still bidding count), Count is more than the cluster can give (Bacalhau:
    # "not enough nodes"), and waiting would not change that.
    taken = {
        e.node_id
        for e in executions
        if ((e.state.active or e.id in wait.placed) and e.id not in failing)
        or e.state == S.COMPLETED
        or e.id in plan.accept
    }
    possible = [node for node in selection.ranked if node.node_id not in taken]
    plan.eligible = tuple(node.node_id for node in possible)
    summary = _shortage(job, needed, selection, holders, refused, len(possible))
    if len(possible) < needed and not may_wait:
        _fail(plan, live, f"no node could run the job: {summary}")
        return
    candidates = [node for node in selection.ranked if node.node_id not in busy_nodes]
    roomy = candidates
    if wait.room is not None:
        rooms, needs = wait.room, wait.needs
        roomy = [n for n in candidates if n.node_id not in rooms or rooms[n.node_id].fits(needs)]
    want = needed * config.over_ask - undecided
    if want > 0 and roomy:
        plan.ask = roomy[:want]
        plan.direct = config.over_ask <= 1 and not config.approve_bids
        plan.why = _why(plan.ask, selection)
        # Look again when these bids are due, even if every ask or answer is lost.
        _wake(plan, now_ns + int(config.bid_timeout_s * 1e9) + 1)
        return
    if undecided > 0:
        return
    if wait.settle_until_ns and not possible:
        _wake(plan, wait.settle_until_ns)  # nobody yet, but not every node has spoken since
        return

    queue_timeout_s = job.task.timeouts.queue_timeout or config.default_queue_timeout_s
    queued_since = job.queueing.since_ns or now_ns
    could_ever = bool(possible) or may_wait
    if want > 0 and candidates and now_ns - queued_since < queue_timeout_s * 1e9:
        # Able nodes, all known to be full: wait in the requester's queue for room to free
        # (a result, a node's announcement), not for a timer.
        message = f"waiting for room: {len(candidates)} able node(s) full"
        _wait_for_room(plan, now_ns, queued_since, queue_timeout_s, message)
        return
    if not could_ever:
        _fail(plan, live, f"no node could run the job: {summary}")
    elif now_ns - queued_since >= queue_timeout_s * 1e9:
        _fail(plan, live, f"queued for {queue_timeout_s:g}s without a node: {summary}")
    else:
        _queue(plan, job, now_ns, config, queued_since, f"waiting for a node: {summary}")


SKIPPED_SHOWN = 3  # nodes whose reason a ranking note names (the rest are counted)
SAMPLE_FLOOR = 16  # able nodes a scan looks for before it stops (see selection.select)


def _sample(
    job: Job,
    nodes: Sequence[NodeInfo],
    previous: Mapping[str, int],
    rng: random.Random,
    wait: Wait,
    busy_nodes: set[str],
    config: SchedulerConfig,
) -> Selection:
    """Able nodes for the job: a random sample of them when the cluster is large and the
    sample has room for every execution still needed, else all of them. A job with
    ``favour_`` preferences always looks at every node (its preferred ones may be few)."""
    limit = max(SAMPLE_FLOOR, 2 * wait.needed * config.over_ask)
    if preferences(job.constraints) or len(nodes) <= limit:
        return select(
            job, nodes, previous, rng, wait.needs, reputation=wait.reputation, vetoes=wait.vetoes
        )
    sample = select(
        job,
        nodes,
        previous,
        rng,
        wait.needs,
        reputation=wait.reputation,
        limit=limit,
        vetoes=wait.vetoes,
    )
    rooms = wait.room or {}
    usable = [
        node
        for node in sample.ranked
        if node.node_id not in busy_nodes
        and (node.node_id not in rooms or rooms[node.node_id].fits(wait.needs))
    ]
    if sample.complete or len(usable) >= wait.needed * config.over_ask:
        return sample
    return select(
        job, nodes, previous, rng, wait.needs, reputation=wait.reputation, vetoes=wait.vetoes
    )


def _why(asked: Sequence[NodeInfo], selection: Selection) -> dict[str, str]:
    """``ranked 1 of 3, score 12.5 (capacity 9.5, preferences 3); skipped n-c: engine
    docker not installed`` for each asked node."""
    position = {node.node_id: index for index, node in enumerate(selection.ranked, 1)}
    skipped = sorted(selection.rejected.items())
    shown = "; ".join(f"{node}: {reason}" for node, reason in skipped[:SKIPPED_SHOWN])
    if len(skipped) > SKIPPED_SHOWN:
        shown += f"; and {len(skipped) - SKIPPED_SHOWN} more"
    notes = {}
    for node in asked:
        rank = selection.ranks[node.node_id]
        note = f"ranked {position[node.node_id]} of {len(selection.ranked)}, {rank.explain()}"
        notes[node.node_id] = f"{note}; skipped {shown}" if shown else note
    return notes


def _shortage(
    job: Job,
    needed: int,
    selection: Selection,
    holders: set[str],
    refused: Mapping[str, str],
    possible: int,
) -> str:
    """Why the job lacks nodes, node by node."""
    holding = {
        node.node_id: "already has an execution of this job"
        for node in selection.ranked
        if node.node_id in holders
    }
    reasons = {**holding, **selection.rejected, **refused}
    detail = "; ".join(f"{node}: {why}" for node, why in sorted(reasons.items()))
    if selection.ranked and (needed < job.count or holding or needed > possible):
        # nodes beyond those that could take an execution: Count=10000 on 2 nodes is 9998
        missing = needed - possible if needed > possible else needed
        head = f"{missing} more node(s) needed for Count={job.count}, {possible} could take one"
        return f"{head} ({detail})" if detail else head
    return detail or "no compute node is connected"


def _fail(plan: Plan, live: Sequence[Execution], message: str) -> None:
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


def _wait_for_room(
    plan: Plan, now_ns: int, queued_since: int, queue_timeout_s: float, message: str
) -> None:
    """Queue the job until a node has room; woken for its queue timeout only."""
    plan.wait_for_room = True
    plan.job_state = JobStateType.QUEUED
    plan.job_message = message
    plan.queueing = Queueing(since_ns=queued_since)
    _wake(plan, queued_since + int(queue_timeout_s * 1e9) + 1)


def _queue(
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
    _wake(plan, round_start)
