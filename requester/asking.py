"""Asking more nodes for a job that needs executions: a sample of the able nodes, ranked; the
job queued (for room, or for its next round) when too few can take it now, or failed when
nobody ever could, naming what each node lacked."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from protocol.execution import Execution
from protocol.job import Job, JobStateType
from protocol.node import NodeInfo
from protocol.resources import Resources
from protocol.selectors import preferences
from protocol.states import ExecutionStateType as S
from requester.plan import (
    Plan,
    SchedulerConfig,
    fail_job,
    is_retryable,
    queue_job,
    wait_for_room,
    wake,
)
from requester.room import Room
from requester.selection import Selection, select


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


def plan_asks(
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
                any_busy |= busy or is_retryable(execution)
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
        or any(e.state == S.FAILED and is_retryable(e) for e in executions)
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
        fail_job(plan, live, f"no node could run the job: {summary}")
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
        wake(plan, now_ns + int(config.bid_timeout_s * 1e9) + 1)
        return
    if undecided > 0:
        return
    if wait.settle_until_ns and not possible:
        wake(plan, wait.settle_until_ns)  # nobody yet, but not every node has spoken since
        return

    queue_timeout_s = job.task.timeouts.queue_timeout or config.default_queue_timeout_s
    queued_since = job.queueing.since_ns or now_ns
    could_ever = bool(possible) or may_wait
    if want > 0 and candidates and now_ns - queued_since < queue_timeout_s * 1e9:
        # Able nodes, all known to be full: wait in the requester's queue for room to free
        # (a result, a node's announcement), not for a timer.
        message = f"waiting for room: {len(candidates)} able node(s) full"
        wait_for_room(plan, now_ns, queued_since, queue_timeout_s, message)
        return
    if not could_ever:
        fail_job(plan, live, f"no node could run the job: {summary}")
    elif now_ns - queued_since >= queue_timeout_s * 1e9:
        fail_job(plan, live, f"queued for {queue_timeout_s:g}s without a node: {summary}")
    else:
        queue_job(plan, job, now_ns, config, queued_since, f"waiting for a node: {summary}")


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
