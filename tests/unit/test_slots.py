"""The compute node's slots: one state per execution, moved only along the table."""

from __future__ import annotations

import itertools

import pytest

from compute.slots import TRANSITIONS, Slots, SlotState, SlotTransitionError
from protocol.execution import Execution
from protocol.job import Job
from protocol.resources import Resources

S = SlotState
NEEDS = Resources(cpu=0.5, memory=1024)


def execution(eid: str = "e-1") -> Execution:
    return Execution(id=eid, node_id="n-1", job_id="j-1")


def slots_in(state: SlotState | None) -> Slots:
    """A Slots whose e-1 is in ``state``, reached by allowed moves only."""
    slots = Slots()
    if state is S.WITHDRAWN:
        slots.withdraw("e-1", "r-1", 1.0)
    elif state is not None:
        slots.reserve(execution(), "r-1", NEEDS, 1.0)
        if state in (S.RUNNING, S.FINISHED):
            slots.move("e-1", S.RUNNING, 2.0)
        if state is S.FINISHED:
            slots.move("e-1", S.FINISHED, 3.0)
    assert slots.state("e-1") is state
    return slots


@pytest.mark.parametrize(("start", "to"), list(itertools.product([None, *S], [None, *S])), ids=str)
def test_every_move_follows_the_table(start: SlotState | None, to: SlotState | None) -> None:
    slots = slots_in(start)

    def move() -> None:
        if to is S.RESERVED:
            slots.reserve(execution(), "r-1", NEEDS, 5.0)
        elif to is S.WITHDRAWN:
            slots.withdraw("e-1", "r-1", 5.0)
        else:
            slots.move("e-1", to, 5.0)

    if to in TRANSITIONS[start]:
        move()
        assert slots.state("e-1") is to
    else:
        with pytest.raises(SlotTransitionError, match="is not allowed"):
            move()
        assert slots.state("e-1") is start  # nothing changed


def test_a_heartbeat_lists_what_holds_capacity_and_recent_runs_only() -> None:
    slots = Slots()
    slots.reserve(execution("e-b"), "r-1", NEEDS, 1.0)
    slots.reserve(execution("e-a"), "r-1", NEEDS, 1.0)
    slots.move("e-a", S.RUNNING, 2.0)
    slots.reserve(execution("e-c"), "r-1", NEEDS, 1.0)
    slots.move("e-c", S.RUNNING, 2.0)
    slots.move("e-c", S.FINISHED, 3.0)
    slots.withdraw("e-d", "r-1", 3.0)
    assert slots.listed() == ["e-a", "e-b", "e-c"]
    assert sorted(slot.held.id for slot in slots.holding_capacity()) == ["e-a", "e-b"]

    slots.prune(horizon_s=3.5)  # Finished and Withdrawn since before 3.5 are forgotten
    assert slots.listed() == ["e-a", "e-b"]
    assert slots.state("e-d") is None
    assert slots.state("e-a") is S.RUNNING  # what holds capacity is never pruned


def test_a_withdrawn_slot_holds_no_execution() -> None:
    slots = Slots()
    slots.withdraw("e-1", "r-1", 1.0)
    slot = slots.get("e-1")
    assert slot is not None
    with pytest.raises(SlotTransitionError, match="holds no execution"):
        _ = slot.held


def test_a_finished_slot_keeps_its_execution_without_the_job() -> None:
    job = Job.from_wire({"ID": "j-1", "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]})
    slots = Slots()
    slots.reserve(execution().model_copy(update={"job": job}), "r-1", NEEDS, 1.0)
    slots.move("e-1", S.RUNNING, 2.0)
    running = slots.get("e-1")
    assert running is not None
    assert running.held.job is job  # a run needs its job
    slots.move("e-1", S.FINISHED, 3.0)
    finished = slots.get("e-1")
    assert finished is not None
    assert finished.held.job is None  # remembered by ID for a while: the job can go
    assert (finished.held.id, finished.held.job_id) == ("e-1", "j-1")
