"""The queue of jobs waiting for room: highest priority first, then arrival order, and
:meth:`Backlog.due` waking only as many as the room now known can take."""

from __future__ import annotations

from protocol.resources import Resources
from requester.backlog import Backlog
from requester.room import Room

GIB = 1024**3
ONE = Resources(cpu=1, memory=GIB)
ROOMY = Room(cpu=64, memory=256 * GIB)
FULL = Room(cpu=0, memory=256 * GIB)


def backlog_of(*job_ids: str, needs: Resources = ONE) -> Backlog:
    backlog = Backlog()
    for job_id in job_ids:
        backlog.wait(job_id, 0, needs, None)
    return backlog


def test_higher_priority_first_then_arrival_order() -> None:
    backlog = Backlog()
    backlog.wait("low-1", 0, ONE, None)
    backlog.wait("high-1", 5, ONE, None)
    backlog.wait("low-2", 0, ONE, None)
    backlog.wait("mid-1", 1, ONE, None)
    backlog.wait("high-2", 5, ONE, None)
    assert backlog.due({"n1": ROOMY}, limit=10) == ["high-1", "high-2", "mid-1", "low-1", "low-2"]


def test_wait_counts_jobs_once_and_discard_takes_them_out() -> None:
    backlog = backlog_of("j1", "j2", "j3")
    assert len(backlog) == 3
    assert "j2" in backlog
    backlog.discard("j2")
    assert len(backlog) == 2
    assert "j2" not in backlog
    assert backlog.due({"n1": ROOMY}, limit=10) == ["j1", "j3"]


def test_discard_of_a_job_not_queued_is_harmless() -> None:
    backlog = backlog_of("j1")
    backlog.discard("j-unknown")
    backlog.discard("j1")
    backlog.discard("j1")
    assert len(backlog) == 0
    assert backlog.due({"n1": ROOMY}, limit=10) == []


def test_a_job_queued_again_keeps_its_place_with_what_it_now_needs() -> None:
    backlog = backlog_of("j1", "j2")
    backlog.wait("j1", 0, Resources(cpu=100), None)
    assert len(backlog) == 2
    assert backlog.due({"n1": ROOMY}, limit=10) == ["j2"]  # j1 no longer fits
    backlog.wait("j1", 0, ONE, None)
    assert backlog.due({"n1": ROOMY}, limit=10) == ["j1", "j2"]


def test_a_job_queued_again_at_another_priority_moves_to_the_end_of_that_priority() -> None:
    backlog = Backlog()
    backlog.wait("a", 1, ONE, None)
    backlog.wait("b", 1, ONE, None)
    backlog.wait("c", 0, ONE, None)
    backlog.wait("a", 0, ONE, None)
    assert len(backlog) == 3
    assert backlog.due({"n1": ROOMY}, limit=10) == ["b", "c", "a"]


def test_one_freed_slot_wakes_one_job() -> None:
    backlog = backlog_of("j1", "j2", "j3")
    assert backlog.due({"n1": Room(cpu=1, memory=8 * GIB)}, limit=10) == ["j1"]


def test_each_job_woken_takes_its_share_off_the_room() -> None:
    """Two jobs that each fit alone but not together: only the first wakes; a smaller one
    further back that fits what is left wakes too."""
    backlog = Backlog()
    backlog.wait("big-1", 0, Resources(cpu=1, memory=3 * GIB), None)
    backlog.wait("big-2", 0, Resources(cpu=1, memory=3 * GIB), None)
    backlog.wait("small", 0, Resources(cpu=1, memory=GIB), None)
    rooms = {"n1": Room(cpu=4, memory=4 * GIB)}
    assert backlog.due(rooms, limit=10) == ["big-1", "small"]


def test_due_changes_neither_the_rooms_it_is_given_nor_the_backlog() -> None:
    backlog = backlog_of("j1", "j2")
    rooms = {"n1": Room(cpu=1, memory=8 * GIB)}
    assert backlog.due(rooms, limit=10) == ["j1"]
    assert rooms == {"n1": Room(cpu=1, memory=8 * GIB)}
    assert len(backlog) == 2
    assert backlog.due(rooms, limit=10) == ["j1"]  # woken jobs stay until discarded


def test_room_on_several_nodes_adds_up() -> None:
    backlog = backlog_of("j1", "j2", "j3")
    rooms = {"n1": Room(cpu=1, memory=8 * GIB), "n2": Room(cpu=1, memory=8 * GIB)}
    assert backlog.due(rooms, limit=10) == ["j1", "j2"]


def test_limit_bounds_the_jobs_woken() -> None:
    backlog = backlog_of("j1", "j2", "j3", "j4")
    assert backlog.due({"n1": ROOMY}, limit=2) == ["j1", "j2"]
    assert backlog.due({"n1": ROOMY}, limit=0) == []


def test_max_misses_bounds_the_jobs_looked_at() -> None:
    backlog = Backlog()
    backlog.wait("huge-1", 0, Resources(cpu=100), None)
    backlog.wait("huge-2", 0, Resources(cpu=100), None)
    backlog.wait("small", 0, ONE, None)
    assert backlog.due({"n1": ROOMY}, limit=10, max_misses=2) == []
    assert backlog.due({"n1": ROOMY}, limit=10, max_misses=3) == ["small"]


def test_no_node_with_cpu_left_wakes_nothing() -> None:
    backlog = Backlog()
    backlog.wait("memory-only", 0, Resources(memory=GIB), None)
    assert backlog.due({"n1": FULL}, limit=10) == []
    assert backlog.due({}, limit=10) == []


def test_the_scan_stops_once_every_node_is_out_of_cpu() -> None:
    backlog = Backlog()
    backlog.wait("j1", 0, ONE, None)
    backlog.wait("memory-only", 0, Resources(memory=GIB), None)
    # memory-only would fit n1 after j1, but n1 has no CPU left by then
    assert backlog.due({"n1": Room(cpu=1, memory=8 * GIB)}, limit=10) == ["j1"]


def test_a_job_restricted_to_some_nodes_wakes_only_for_room_on_them() -> None:
    backlog = Backlog()
    backlog.wait("only-b", 0, ONE, frozenset({"b"}))
    assert backlog.due({"a": ROOMY, "b": FULL}, limit=10) == []
    assert backlog.due({"a": ROOMY, "b": ROOMY, "c": ROOMY}, limit=10) == ["only-b"]
    assert backlog.due({"a": ROOMY, "b": Room(cpu=1, memory=8 * GIB)}, limit=10) == ["only-b"]
    assert backlog.due({"a": ROOMY}, limit=10) == []  # b's room unknown


def test_a_restricted_job_takes_room_only_where_it_may_run() -> None:
    backlog = Backlog()
    backlog.wait("only-a", 0, ONE, frozenset({"a"}))
    backlog.wait("any-1", 0, ONE, None)
    backlog.wait("any-2", 0, ONE, None)
    rooms = {"a": Room(cpu=1, memory=8 * GIB), "b": Room(cpu=1, memory=8 * GIB)}
    assert backlog.due(rooms, limit=10) == ["only-a", "any-1"]


def test_a_job_no_node_was_able_to_run_wakes_nowhere() -> None:
    backlog = Backlog()
    backlog.wait("none", 0, ONE, frozenset())
    assert backlog.due({"a": ROOMY}, limit=10) == []


def test_open_to_all_lifts_the_restriction_and_keeps_the_order() -> None:
    backlog = Backlog()
    backlog.wait("only-b", 0, ONE, frozenset({"b"}))
    backlog.wait("any", 0, ONE, None)
    backlog.wait("none", 0, ONE, frozenset())
    assert backlog.due({"a": ROOMY}, limit=10) == ["any"]
    backlog.open_to_all()
    assert len(backlog) == 3
    assert backlog.due({"a": ROOMY}, limit=10) == ["only-b", "any", "none"]


def test_nodes_are_tried_in_the_order_the_rooms_are_given() -> None:
    """Which jobs wake must not depend on the hash seed: the first node that fits, in the
    order of ``rooms``, takes the job."""
    backlog = Backlog()
    backlog.wait("small", 0, Resources(cpu=1, memory=GIB), None)
    backlog.wait("large", 0, Resources(cpu=2, memory=GIB), None)
    one, two = Room(cpu=1, memory=8 * GIB), Room(cpu=2, memory=8 * GIB)
    assert backlog.due({"a": one, "b": two}, limit=10) == ["small", "large"]
    assert backlog.due({"b": two, "a": one}, limit=10) == ["small"]
