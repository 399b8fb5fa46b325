"""Properties of the scheduler, over generated jobs, executions, nodes and rooms: whatever it
is given, its plan never over-commits a job, never asks a node it must not, only touches
executions that can still change, and moves the job only along its transition table."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.bookkeeping import Verdict
from protocol.execution import ComputeState, DesiredState, Execution
from protocol.job import Job, JobState, JobStateType
from protocol.node import ComputeNodeInfo, NodeInfo
from protocol.resources import Resources
from protocol.states import JOB_TRANSITIONS
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from requester.plan import ClusterView, Plan, SchedulerConfig, is_direct, job_needs
from requester.room import Room
from requester.scheduler import schedule

NOW = 10_000 * 10**9
BID_TIMEOUT_S = 10.0
NODES = [f"n{i}" for i in range(5)]
GONE = "n-gone"  # a node the requester no longer hears from
STATES = [state for state in S if state != S.UNDEFINED]
VERDICTS = st.builds(Verdict, retryable=st.booleans(), never_ran=st.booleans(), busy=st.booleans())


def compute_node(node_id: str, cpu: float) -> NodeInfo:
    capacity = Resources(cpu=cpu, memory=8 * 1024**3)
    return NodeInfo(
        node_id=node_id,
        compute_node_info=ComputeNodeInfo(
            execution_engines=["noop"],
            publishers=["noop"],
            storage_sources=["inline"],
            max_capacity=capacity,
            available_capacity=capacity,
        ),
    )


@dataclass(frozen=True)
class Case:
    job: Job
    executions: list[Execution]
    nodes: list[NodeInfo]
    rooms: dict[str, Room] | None
    config: SchedulerConfig
    seed: int

    def plan(self) -> Plan:
        return schedule(
            self.job,
            self.executions,
            self.nodes,
            NOW,
            self.config,
            random.Random(self.seed),
            ClusterView(room=self.rooms),
        )


@st.composite
def executions(draw: st.DrawFn, job_id: str) -> list[Execution]:
    made: list[Execution] = []
    for index in range(draw(st.integers(0, 6))):
        state = draw(st.sampled_from(STATES))
        stale = draw(st.booleans())  # changed before the bid timeout: an ask may have expired
        when = NOW - int((BID_TIMEOUT_S + 5) * 1e9) if stale else NOW - 10**9
        desired = draw(st.sampled_from([D.PENDING, D.RUNNING]))
        made.append(
            Execution(
                id=f"e-{index}",
                job_id=job_id,
                node_id=draw(st.sampled_from([*NODES, GONE])),
                compute_state=ComputeState(state_type=state, message=""),
                desired_state=DesiredState(state_type=desired),
                create_time=when,
                modify_time=when,
            ).with_verdict(draw(VERDICTS))
        )
    return made


@st.composite
def cases(draw: st.DrawFn) -> Case:
    count = draw(st.integers(1, 3))
    state = draw(st.sampled_from([JobStateType.PENDING, JobStateType.QUEUED, JobStateType.RUNNING]))
    job = Job.model_validate(
        {"ID": "j-1", "Count": count, "Tasks": [{"Engine": {"Type": "noop"}}]}
    ).model_copy(update={"state": JobState(state_type=state)})
    connected = draw(st.lists(st.sampled_from(NODES), min_size=0, max_size=5, unique=True))
    nodes = [compute_node(n, draw(st.sampled_from([0.05, 1.0, 4.0]))) for n in connected]
    rooms = None
    if draw(st.booleans()):
        rooms = {
            n: Room(cpu=draw(st.sampled_from([0.0, 0.05, 2.0])), memory=2**40) for n in connected
        }
    config = SchedulerConfig(over_ask=draw(st.sampled_from([1, 3])), bid_timeout_s=BID_TIMEOUT_S)
    return Case(job, draw(executions(job.id)), nodes, rooms, config, draw(st.integers(0, 2**16)))


def committed(execution: Execution) -> bool:
    """Holds (or is about to hold) a slot for the job: accepted, running, or placed directly."""
    return not execution.state.terminal and (execution.state.active or is_direct(execution))


def well_formed(case: Case) -> bool:
    """What the requester's own bookkeeping guarantees: one live execution per node, and never
    more committed executions than the job still needs."""
    live = [e for e in case.executions if not e.state.terminal]
    if len({e.node_id for e in live}) < len(live):
        return False
    completed = sum(e.state == S.COMPLETED for e in case.executions)
    return sum(committed(e) for e in case.executions) <= max(0, case.job.count - completed)


@settings(max_examples=800, deadline=None)
@given(cases())
def test_a_plan_touches_only_executions_that_can_still_change(case: Case) -> None:
    plan = case.plan()
    by_id = {e.id: e for e in case.executions}
    live = {e.id for e in case.executions if not e.state.terminal}
    failed = {eid for eid, _ in plan.fail}
    rejected = {eid for eid, _ in plan.reject}
    cancelled = {eid for eid, _ in plan.cancel}
    assert failed | rejected | cancelled | set(plan.accept) <= live
    assert all(by_id[eid].state == S.ASK_FOR_BID_ACCEPTED for eid in [*plan.accept, *rejected])
    assert not set(plan.accept) & (failed | rejected | cancelled)
    assert len(plan.accept) == len(set(plan.accept))


@settings(max_examples=800, deadline=None)
@given(cases())
def test_a_plan_never_asks_a_node_it_must_not(case: Case) -> None:
    plan = case.plan()
    asked = [node.node_id for node in plan.ask]
    assert len(asked) == len(set(asked))
    assert set(asked) <= {node.node_id for node in case.nodes}
    failing = {eid for eid, _ in plan.fail}
    holders = {
        e.node_id
        for e in case.executions
        if (not e.state.terminal and e.id not in failing) or e.state == S.COMPLETED
    }
    assert not set(asked) & holders, "a node runs at most one execution of a job"
    if case.rooms is not None:
        needs = job_needs(case.job, case.config)
        assert all(case.rooms[n].fits(needs) for n in asked), "a node known to be full"
    if plan.ask:
        assert plan.direct == (case.config.over_ask == 1)


@settings(max_examples=800, deadline=None)
@given(cases())
def test_a_plan_never_commits_more_executions_than_the_job_needs(case: Case) -> None:
    if not well_formed(case):
        return
    plan = case.plan()
    ended = {eid for eid, _ in [*plan.fail, *plan.cancel]}
    still = sum(committed(e) for e in case.executions if e.id not in ended)
    placing = len(plan.ask) if plan.direct else 0
    completed = sum(e.state == S.COMPLETED for e in case.executions)
    assert still + len(plan.accept) + placing <= max(0, case.job.count - completed)


@settings(max_examples=800, deadline=None)
@given(cases())
def test_a_plan_moves_the_job_only_along_its_table_and_ends_it_cleanly(case: Case) -> None:
    plan = case.plan()
    old = case.job.state.state_type
    if plan.job_state is not None and plan.job_state != old:
        assert plan.job_state in JOB_TRANSITIONS[old]
    if plan.job_state in (JobStateType.FAILED, JobStateType.COMPLETED):
        assert plan.ask == []
        assert plan.accept == []
        handled = {eid for eid, _ in [*plan.fail, *plan.reject, *plan.cancel]}
        assert {e.id for e in case.executions if not e.state.terminal} <= handled
    if plan.job_state is JobStateType.COMPLETED:
        assert sum(e.state == S.COMPLETED for e in case.executions) >= case.job.count


@settings(max_examples=300, deadline=None)
@given(cases())
def test_the_same_inputs_and_seed_make_the_same_plan(case: Case) -> None:
    first, second = case.plan(), case.plan()
    assert first == second


@settings(max_examples=300, deadline=None)
@given(
    cases(), st.sampled_from([JobStateType.COMPLETED, JobStateType.FAILED, JobStateType.STOPPED])
)
def test_an_ended_job_only_cancels_what_is_left(case: Case, ended: JobStateType) -> None:
    job = case.job.model_copy(update={"state": JobState(state_type=ended)})
    plan = schedule(job, case.executions, case.nodes, NOW, case.config, random.Random(case.seed))
    assert {eid for eid, _ in plan.cancel} == {
        e.id for e in case.executions if not e.state.terminal
    }
    assert plan.ask == []
    assert plan.accept == []
    assert plan.reject == []
    assert plan.fail == []
    assert plan.job_state is None
