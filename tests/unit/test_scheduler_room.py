"""Direct placement (over-ask 1): the scheduler asks only nodes known to have room, and a
job every able node of which is full waits, queued, for room rather than asking anyway."""

from __future__ import annotations

import random

from protocol.bookkeeping import Queueing
from protocol.execution import DesiredState, Execution
from protocol.job import Job, JobStateType
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from requester.plan import ClusterView, Plan, SchedulerConfig, is_direct
from requester.room import Room
from requester.scheduler import schedule
from tests.unit.test_scheduler import NOW, execution, job, node

DIRECT = SchedulerConfig(over_ask=1, bid_timeout_s=10)
FULL = Room(cpu=0.05, memory=8 * 1024**3)
ROOMY = Room(cpu=2, memory=8 * 1024**3)


def plan_with_room(
    j: Job,
    rooms: dict[str, Room] | None,
    executions: list[Execution] | None = None,
    config: SchedulerConfig = DIRECT,
    now_ns: int = NOW,
) -> Plan:
    nodes = [node("a"), node("b")]
    return schedule(
        j, executions or [], nodes, now_ns, config, random.Random(7), ClusterView(room=rooms)
    )


def placed(eid: str, node_id: str) -> Execution:
    """An execution asked to start at once, whose bid has not come back yet."""
    asked = execution(eid, node_id, S.ASK_FOR_BID)
    return asked.model_copy(update={"desired_state": DesiredState(state_type=D.RUNNING)})


def test_only_a_node_with_room_is_asked_and_the_ask_is_direct() -> None:
    plan = plan_with_room(job(), {"a": FULL, "b": ROOMY})
    assert [n.node_id for n in plan.ask] == ["b"]
    assert plan.direct
    assert not plan.wait_for_room


def test_with_every_able_node_full_the_job_waits_for_room_without_asking() -> None:
    plan = plan_with_room(job(timeouts={"QueueTimeout": 60}), {"a": FULL, "b": FULL})
    assert plan.ask == []
    assert plan.wait_for_room
    assert plan.job_state is JobStateType.QUEUED
    assert plan.job_message == "waiting for room: 2 able node(s) full"
    assert set(plan.eligible) == {"a", "b"}
    assert plan.queueing == Queueing(since_ns=NOW)
    assert plan.wake_at_ns == NOW + 60 * 10**9 + 1  # its queue timeout, nothing sooner


def test_a_job_waiting_for_room_past_its_queue_timeout_fails() -> None:
    since = NOW - 61 * 10**9
    queued = job(state=JobStateType.QUEUED, timeouts={"QueueTimeout": 60})
    queued = queued.with_queueing(Queueing(since_ns=since))
    plan = plan_with_room(queued, {"a": FULL, "b": FULL})
    assert plan.job_state is JobStateType.FAILED
    assert not plan.wait_for_room


def test_a_node_that_sends_no_capacity_report_may_still_be_asked() -> None:
    plan = plan_with_room(job(), {"a": FULL})  # b says nothing of its room
    assert [n.node_id for n in plan.ask] == ["b"]


def test_an_unanswered_direct_ask_counts_as_placed_so_nothing_more_is_asked() -> None:
    asked = placed("e1", "b")
    assert is_direct(asked)
    plan = plan_with_room(job(), {"a": ROOMY, "b": ROOMY}, [asked])
    assert plan.ask == []
    assert not plan.wait_for_room
    assert plan.wake_at_ns == NOW + 10 * 10**9 + 1  # its bid's deadline


def test_a_direct_ask_with_no_answer_by_its_deadline_fails_and_is_placed_elsewhere() -> None:
    stale = NOW - 11 * 10**9
    asked = placed("e1", "b").model_copy(update={"modify_time": stale})
    plan = plan_with_room(job(), {"a": ROOMY, "b": ROOMY}, [asked])
    assert [eid for eid, _ in plan.fail] == ["e1"]
    assert [n.node_id for n in plan.ask] == ["a"]


def test_over_ask_above_one_keeps_the_approval_round() -> None:
    hedged = SchedulerConfig(over_ask=2, bid_timeout_s=10)
    plan = plan_with_room(job(), {"a": ROOMY, "b": ROOMY}, config=hedged)
    assert {n.node_id for n in plan.ask} == {"a", "b"}
    assert not plan.direct


def test_unknown_room_asks_as_before() -> None:
    plan = plan_with_room(job(), None)
    assert len(plan.ask) == 1
    assert plan.direct
