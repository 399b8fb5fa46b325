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

from protocol.errors import ValidationError
from protocol.execution import Execution
from protocol.job import Job, JobStateType
from protocol.node import NodeInfo
from protocol.states import ExecutionStateType as S
from protocol.verification import verification
from requester.asking import Wait, plan_asks
from requester.plan import (
    ASKING,
    NOTHING_MORE,
    ClusterView,
    NodeReport,
    Plan,
    SchedulerConfig,
    fail_job,
    is_direct,
    is_retryable,
    job_needs,
    wake,
)
from requester.selection import select, source_types
from requester.verifier import hash_of, verify


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


def _has_run(execution: Execution) -> bool:
    """It started on its node: running now, or ended with what its run gave."""
    if execution.state in (S.RUNNING, S.PUBLISHING, S.COMPLETED):
        return True
    return execution.state == S.FAILED and execution.run_output is not None


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
        fail_job(plan, live, f"Tasks[0].Resources: {exc}")
        return plan
    except ValidationError as exc:  # stored before today's rules for its specs
        fail_job(plan, live, f"{exc.field}: {exc.problem}")
        return plan
    bid_deadline_ns = now_ns - int(config.bid_timeout_s * 1e9)
    failed_now: set[str] = set()
    gone = {e.id for e in disowned(live, reports, config)}
    settling = now_ns < settle_until_ns
    for execution in live:
        if execution.node_id not in connected and settling:
            wake(plan, settle_until_ns)  # its node may not have announced itself yet
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
    final_failures = [e for e in executions if e.state == S.FAILED and not is_retryable(e)]
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
            fail_job(plan, live, f"verification failed: {verdicts.disagreement}")
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
            wake(plan, execution.modify_time + int(config.bid_timeout_s * 1e9) + 1)
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
    plan_asks(plan, job, executions, live, nodes, now_ns, config, rng, wait)
    return plan
