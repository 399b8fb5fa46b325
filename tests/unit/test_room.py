"""The requester's view of each node's room: the node's last capacity report, less what this
requester placed there since, plus what ended there that the report still counts."""

from __future__ import annotations

import pytest

from protocol.resources import Resources
from requester.room import CapacityReport, Ledger, Room

GIB = 1024**3
ONE = Resources(cpu=1, memory=GIB)
HALF = Resources(cpu=0.5, memory=GIB // 2)


def report(cpu: float = 4, memory: int = 8 * GIB, using: tuple[str, ...] = ()) -> CapacityReport:
    return CapacityReport(Resources(cpu=cpu, memory=memory), frozenset(using))


# Room


def test_room_of_resources_copies_every_dimension() -> None:
    resources = Resources(cpu=1.5, memory=2 * GIB, disk=3 * GIB, gpu=2)
    assert Room.of(resources) == Room(cpu=1.5, memory=2 * GIB, disk=3 * GIB, gpu=2)


def test_plus_adds_and_with_a_negative_sign_takes_off_and_may_go_below_zero() -> None:
    room = Room(cpu=1, memory=GIB, disk=GIB, gpu=1)
    needs = Resources(cpu=0.5, memory=GIB // 2, disk=GIB // 4, gpu=1)
    assert room.plus(needs) == Room(cpu=1.5, memory=GIB + GIB // 2, disk=GIB + GIB // 4, gpu=2)
    assert room.plus(needs, -1) == Room(cpu=0.5, memory=GIB // 2, disk=3 * GIB // 4, gpu=0)
    assert room.plus(Resources(cpu=2), -1).cpu == -1
    assert room == Room(cpu=1, memory=GIB, disk=GIB, gpu=1)  # plus returns a new room


@pytest.mark.parametrize(
    ("room", "needs", "fits"),
    [
        (Room(cpu=2), Resources(cpu=2), True),
        (Room(cpu=2), Resources(cpu=2.001), False),
        (Room(cpu=0.3), Resources(cpu=0.1 + 0.2), True),  # float rounding is not "over"
        (Room(memory=GIB), Resources(memory=GIB), True),
        (Room(memory=GIB), Resources(memory=GIB + 1), False),
        (Room(disk=GIB), Resources(disk=GIB), True),
        (Room(disk=GIB), Resources(disk=GIB + 1), False),
        (Room(gpu=1), Resources(gpu=1), True),
        (Room(gpu=1), Resources(gpu=2), False),
        (Room(cpu=4, memory=GIB, disk=GIB, gpu=1), Resources(cpu=4, memory=GIB, gpu=1), True),
        (Room(cpu=4, memory=GIB, disk=GIB, gpu=1), Resources(cpu=4, memory=GIB, gpu=2), False),
    ],
)
def test_fits_when_every_dimension_is_at_most_the_room(
    room: Room, needs: Resources, fits: bool
) -> None:
    assert room.fits(needs) is fits


def test_a_dimension_the_job_does_not_ask_for_never_stops_it() -> None:
    overdrawn = Room(cpu=1, memory=-GIB, disk=-1, gpu=-1)
    assert overdrawn.fits(Resources(cpu=1))
    assert not overdrawn.fits(Resources(cpu=1, memory=1))
    assert not overdrawn.fits(Resources(cpu=1, gpu=1))
    assert Room(cpu=-1).fits(Resources(memory=0))


# Ledger


def test_room_is_the_report_less_what_was_placed_since() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    ledger.placed("n1", "e2", HALF)
    assert ledger.room("n1", report()) == Room(cpu=2.5, memory=8 * GIB - GIB - GIB // 2)


def test_placements_on_other_nodes_take_nothing_here() -> None:
    ledger = Ledger()
    ledger.placed("n2", "e1", ONE)
    assert ledger.room("n1", report()) == Room(cpu=4, memory=8 * GIB)
    assert ledger.room("n2", report()) == Room(cpu=3, memory=7 * GIB)


def test_an_execution_the_report_counts_is_not_taken_off_twice() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    ledger.placed("n1", "e2", ONE)
    # the node's own figure already has e1 off
    assert ledger.room("n1", report(cpu=3, memory=7 * GIB, using=("e1",))) == Room(
        cpu=2, memory=6 * GIB
    )


def test_an_ended_execution_the_report_still_counts_gives_its_room_back() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    counted = report(cpu=3, memory=7 * GIB, using=("e1",))
    assert ledger.room("n1", counted) == Room(cpu=3, memory=7 * GIB)
    ledger.ended("e1")  # its result came: the node has released it
    assert ledger.room("n1", counted) == Room(cpu=4, memory=8 * GIB)


def test_an_ended_execution_the_report_no_longer_counts_is_not_given_back_twice() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    ledger.ended("e1")
    # the node's newer report already has e1's room back in it
    assert ledger.room("n1", report(using=())) == Room(cpu=4, memory=8 * GIB)


def test_an_ended_execution_is_forgotten_once_a_report_no_longer_counts_it() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    ledger.ended("e1")
    assert ledger.room("n1", report(using=())) == Room(cpu=4, memory=8 * GIB)
    # a report that counts it again (older, arriving late) gets nothing back for it
    stale = report(cpu=3, memory=7 * GIB, using=("e1",))
    assert ledger.room("n1", stale) == Room(cpu=3, memory=7 * GIB)


def test_a_finished_execution_whose_result_has_not_come_still_takes_room() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    # the node finished e1 and no longer counts it, but this requester has no result yet
    assert ledger.room("n1", report(using=())) == Room(cpu=3, memory=7 * GIB)
    assert ledger.live_count() == 1


def test_a_placement_after_a_room_was_worked_out_from_the_same_report_counts() -> None:
    ledger = Ledger()
    same = report()
    assert ledger.room("n1", same) == Room(cpu=4, memory=8 * GIB)
    ledger.placed("n1", "e1", ONE)
    assert ledger.room("n1", same) == Room(cpu=3, memory=7 * GIB)
    ledger.ended("e1")
    assert ledger.room("n1", same) == Room(cpu=4, memory=8 * GIB)


def test_forget_node_drops_its_live_and_ended_executions() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    ledger.placed("n1", "e2", ONE)
    ledger.placed("n2", "e3", ONE)
    ledger.ended("e2")
    counted = report(cpu=2, memory=6 * GIB, using=("e1", "e2"))
    assert ledger.room("n1", counted) == Room(cpu=3, memory=7 * GIB)
    ledger.forget_node("n1")
    assert ledger.live_count() == 1
    assert ledger.room("n1", counted) == Room(cpu=2, memory=6 * GIB)  # e2 no longer given back
    assert ledger.room("n1", report()) == Room(cpu=4, memory=8 * GIB)  # e1 no longer taken
    ledger.ended("e1")  # its result arriving late is harmless
    assert ledger.live_count() == 1
    assert ledger.room("n2", report()) == Room(cpu=3, memory=7 * GIB)


def test_live_count_counts_placed_executions_until_they_end() -> None:
    ledger = Ledger()
    assert ledger.live_count() == 0
    ledger.placed("n1", "e1", ONE)
    ledger.placed("n2", "e2", ONE)
    assert ledger.live_count() == 2
    ledger.ended("e1")
    assert ledger.live_count() == 1
    ledger.ended("e1")  # twice
    ledger.ended("e-unknown")
    assert ledger.live_count() == 1


def test_rooms_works_out_each_reported_node() -> None:
    ledger = Ledger()
    ledger.placed("n1", "e1", ONE)
    ledger.placed("n3", "e2", ONE)  # a node that sent no report gets no room
    rooms = ledger.rooms({"n1": report(), "n2": report(cpu=1, memory=GIB)})
    assert rooms == {"n1": Room(cpu=3, memory=7 * GIB), "n2": Room(cpu=1, memory=GIB)}
