from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator

import pytest

from compute.capacity import (
    CapacitySnapshot,
    CapacityTracker,
    execution_needs,
    job_resources,
    shortfall,
)
from protocol.resources import Resources
from tests.support.recorders import FakeClock

GI = 1024**3


def res(cpu: float = 0.0, memory: int = 0, disk: int = 0, gpu: int = 0) -> Resources:
    return Resources(cpu=cpu, memory=memory, disk=disk, gpu=gpu)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tracker(clock: FakeClock) -> CapacityTracker:
    return CapacityTracker(res(cpu=4, memory=8 * GI, disk=100 * GI, gpu=1), clock=clock)


def within(snapshot: CapacitySnapshot) -> bool:
    held = snapshot.reserved + snapshot.allocated
    maximum = snapshot.max_capacity
    return (
        held.cpu <= maximum.cpu + 1e-9
        and held.memory <= maximum.memory
        and held.disk <= maximum.disk
        and held.gpu <= maximum.gpu
    )


def test_reserve_holds_capacity_until_released(tracker: CapacityTracker) -> None:
    assert tracker.try_reserve("e-1", res(cpu=1.5, memory=GI), ttl_s=30) is None
    assert tracker.available() == res(cpu=2.5, memory=7 * GI, disk=100 * GI, gpu=1)
    assert tracker.reserved() == res(cpu=1.5, memory=GI)
    assert tracker.allocated() == res()
    assert (tracker.reserved_count, tracker.running_count) == (1, 0)
    assert tracker.release("e-1") is True
    assert tracker.available() == tracker.max_capacity
    assert tracker.release("e-1") is False


def test_refusal_names_every_short_dimension(tracker: CapacityTracker) -> None:
    assert tracker.try_reserve("e-1", res(cpu=2.5, gpu=1), ttl_s=30) is None
    reason = tracker.try_reserve("e-2", res(cpu=2, memory=9 * GI, gpu=1), ttl_s=30)
    assert reason == (
        "not enough capacity: cpu 2 > 1500m available, memory 9Gi > 8Gi available, "
        "gpu 1 > 0 available"
    )
    assert tracker.reserved_count == 1


def test_job_needing_zero_of_a_dimension_fits_a_full_dimension(clock: FakeClock) -> None:
    tracker = CapacityTracker(res(cpu=1, memory=GI), clock=clock)
    assert tracker.try_reserve("e-1", res(memory=GI), ttl_s=30) is None
    assert tracker.try_reserve("e-2", res(cpu=1), ttl_s=30) is None
    assert tracker.try_reserve("e-3", res(), ttl_s=30) is None
    assert tracker.try_reserve("e-4", res(disk=1), ttl_s=30) == (
        "not enough capacity: disk 1 > 0 available"
    )


def test_reserve_is_idempotent(tracker: CapacityTracker, clock: FakeClock) -> None:
    assert tracker.try_reserve("e-1", res(cpu=3), ttl_s=30) is None
    assert tracker.try_reserve("e-1", res(cpu=3), ttl_s=30) is None
    assert tracker.reserved_count == 1
    assert tracker.available().cpu == 1
    clock.advance(29)
    assert tracker.try_reserve("e-1", res(cpu=3), ttl_s=30) is None
    clock.advance(1)
    assert tracker.expire() == ["e-1"], "a repeat keeps the original expiry"


def test_commit_turns_reservation_into_allocation(
    tracker: CapacityTracker, clock: FakeClock
) -> None:
    assert tracker.try_reserve("e-1", res(cpu=2), ttl_s=10) is None
    assert tracker.commit("e-1") is True
    assert tracker.commit("e-1") is True
    clock.advance(3600)
    assert tracker.expire() == []
    assert (tracker.reserved_count, tracker.running_count) == (0, 1)
    assert tracker.allocated() == res(cpu=2)
    assert tracker.try_reserve("e-1", res(cpu=2), ttl_s=10) is None
    assert tracker.available().cpu == 2, "reserving a running execution holds nothing more"
    assert tracker.release("e-1") is True
    assert tracker.available() == tracker.max_capacity


def test_commit_unknown_or_expired_fails_and_may_reserve_again(
    tracker: CapacityTracker, clock: FakeClock
) -> None:
    assert tracker.commit("e-unknown") is False
    assert tracker.try_reserve("e-1", res(cpu=2), ttl_s=10) is None
    clock.advance(10)
    assert tracker.commit("e-1") is False
    assert tracker.expire() == [], "a failed commit already dropped the reservation"
    assert tracker.try_reserve("e-1", res(cpu=2), ttl_s=10) is None
    assert tracker.commit("e-1") is True


def test_expired_reservations_stop_counting_before_expire_is_called(
    tracker: CapacityTracker, clock: FakeClock
) -> None:
    assert tracker.try_reserve("e-1", res(cpu=3), ttl_s=5) is None
    assert tracker.try_reserve("e-2", res(cpu=1), ttl_s=20) is None
    assert tracker.try_reserve("e-3", res(cpu=1), ttl_s=20) is not None
    clock.advance(5)
    assert tracker.reserved_count == 1
    assert tracker.available().cpu == 3
    assert tracker.try_reserve("e-3", res(cpu=3), ttl_s=20) is None
    assert tracker.expire() == ["e-1"]
    assert tracker.expire() == []


def test_expired_reservation_can_be_renewed_under_the_same_id(
    tracker: CapacityTracker, clock: FakeClock
) -> None:
    assert tracker.try_reserve("e-1", res(cpu=1), ttl_s=5) is None
    clock.advance(6)
    assert tracker.try_reserve("e-1", res(cpu=4), ttl_s=5) is None
    assert tracker.reserved() == res(cpu=4)
    assert tracker.expire() == []
    assert tracker.commit("e-1") is True


def test_release_frees_reservation_without_reporting_expiry(
    tracker: CapacityTracker, clock: FakeClock
) -> None:
    assert tracker.try_reserve("e-1", res(cpu=1), ttl_s=5) is None
    assert tracker.release("e-1") is True
    clock.advance(10)
    assert tracker.expire() == []


def test_ttl_must_be_positive(tracker: CapacityTracker) -> None:
    with pytest.raises(ValueError, match="ttl_s must be positive"):
        tracker.try_reserve("e-1", res(cpu=1), ttl_s=0)


def test_fractional_cpu_adds_up_exactly(clock: FakeClock) -> None:
    tracker = CapacityTracker(res(cpu=1), clock=clock)
    for index in range(10):
        assert tracker.try_reserve(f"e-{index}", res(cpu=0.1), ttl_s=30) is None
    assert tracker.try_reserve("e-10", res(cpu=0.1), ttl_s=30) == (
        "not enough capacity: cpu 100m > 0 available"
    )


def test_snapshot_is_consistent(tracker: CapacityTracker) -> None:
    tracker.try_reserve("e-1", res(cpu=1, memory=GI), ttl_s=30)
    tracker.try_reserve("e-2", res(cpu=2), ttl_s=30)
    tracker.commit("e-2")
    snapshot = tracker.snapshot()
    assert snapshot == CapacitySnapshot(
        max_capacity=tracker.max_capacity,
        reserved=res(cpu=1, memory=GI),
        allocated=res(cpu=2),
        available=res(cpu=1, memory=7 * GI, disk=100 * GI, gpu=1),
        reserved_count=1,
        running_count=1,
        holders=frozenset({"e-1", "e-2"}),
    )


def test_shortfall_is_empty_when_it_fits() -> None:
    assert shortfall(res(cpu=1), res(cpu=1), res(cpu=2)) == []
    assert shortfall(res(cpu=1.5), res(cpu=1), res(cpu=2)) == ["cpu 1500m > 1 available"]


def test_job_resources_fills_unset_dimensions_from_defaults() -> None:
    defaults = res(cpu=0.5, memory=GI, disk=GI, gpu=1)
    assert job_resources(res(cpu=2), defaults) == res(cpu=2, memory=GI, disk=GI)


NODE_DEFAULTS = res(cpu=0.1, memory=64 * 1024**2)


@pytest.mark.parametrize(
    ("asked", "allocated", "needs"),
    [
        # no AllocatedResources: the task's asks, with the node's defaults where it left 0
        (res(cpu=64), res(), res(cpu=64, memory=64 * 1024**2)),
        (res(), res(), NODE_DEFAULTS),
        # an allocation smaller than the task asks is not trusted, per dimension
        (
            res(cpu=2, memory=GI, gpu=1),
            res(cpu=0.5, memory=2 * GI),
            res(cpu=2, memory=2 * GI, gpu=1),
        ),
        # a larger allocation (the requester's own defaults) is honoured
        (res(), res(cpu=1, memory=GI, disk=GI), res(cpu=1, memory=GI, disk=GI)),
    ],
    ids=["no-allocation", "nothing-asked", "allocation-too-small", "allocation-larger"],
)
def test_execution_needs_is_the_larger_of_the_task_asks_and_the_allocation(
    asked: Resources, allocated: Resources, needs: Resources
) -> None:
    assert execution_needs(asked, allocated, NODE_DEFAULTS) == needs


def random_steps(seed: int, count: int) -> Iterator[tuple[str, str, float]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield (
            rng.choice(["reserve", "commit", "release", "expire", "tick"]),
            (f"e-{rng.randrange(12)}"),
            rng.choice([0.0, 0.5, 1.0, 2.0]),
        )


@pytest.mark.parametrize("seed", range(20))
def test_invariant_holds_after_every_step_of_random_operations(seed: int) -> None:
    clock = FakeClock()
    tracker = CapacityTracker(res(cpu=3, memory=4 * GI), clock=clock)
    refusals = 0
    for action, execution_id, amount in random_steps(seed, 300):
        if action == "reserve":
            wanted = res(cpu=amount, memory=int(amount * GI))
            refusals += tracker.try_reserve(execution_id, wanted, ttl_s=3) is not None
        elif action == "commit":
            tracker.commit(execution_id)
        elif action == "release":
            tracker.release(execution_id)
        elif action == "expire":
            tracker.expire()
        else:
            clock.advance(amount)
        snapshot = tracker.snapshot()
        assert within(snapshot), (action, execution_id, snapshot)
        assert snapshot.available == snapshot.max_capacity - (
            snapshot.reserved + snapshot.allocated
        )
    assert refusals > 0, "the sequence should have pushed the tracker to its limit"


@pytest.fixture
def fast_switching() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("round_number", range(10))
def test_racing_threads_never_overcommit(round_number: int) -> None:
    tracker = CapacityTracker(res(cpu=3))
    barrier = threading.Barrier(8)
    outcomes: dict[str, str | None] = {}
    outcomes_lock = threading.Lock()

    def worker(index: int) -> None:
        barrier.wait()
        for number in range(index, 100, 8):
            execution_id = f"e-{number}"
            outcome = tracker.try_reserve(execution_id, res(cpu=1), ttl_s=3600)
            with outcomes_lock:
                outcomes[execution_id] = outcome

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    reserved = sorted(execution for execution, outcome in outcomes.items() if outcome is None)
    assert len(outcomes) == 100
    assert len(reserved) == 3
    assert tracker.reserved_count == 3
    refusals = {outcome for outcome in outcomes.values() if outcome is not None}
    assert refusals == {"not enough capacity: cpu 1 > 0 available"}


@pytest.mark.usefixtures("fast_switching")
@pytest.mark.parametrize("round_number", range(10))
def test_racing_threads_with_churn_keep_the_invariant_at_every_step(round_number: int) -> None:
    tracker = CapacityTracker(res(cpu=3))
    barrier = threading.Barrier(8)
    snapshots: list[CapacitySnapshot] = []
    reserved_total = 0
    record_lock = threading.Lock()

    def record(snapshot: CapacitySnapshot, reserved: int = 0) -> None:
        nonlocal reserved_total
        with record_lock:
            snapshots.append(snapshot)
            reserved_total += reserved

    def worker(index: int) -> None:
        barrier.wait()
        for number in range(index, 100, 8):
            execution_id = f"e-{number}"
            if tracker.try_reserve(execution_id, res(cpu=1), ttl_s=3600) is not None:
                record(tracker.snapshot())
                continue
            record(tracker.snapshot(), reserved=1)
            assert tracker.commit(execution_id)
            record(tracker.snapshot())
            assert tracker.release(execution_id)
            record(tracker.snapshot())

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(snapshots) >= 100
    bad = [snapshot for snapshot in snapshots if not within(snapshot)]
    assert bad == []
    assert max(s.reserved_count + s.running_count for s in snapshots) <= 3
    assert reserved_total >= 3
    assert tracker.snapshot() == CapacitySnapshot(
        max_capacity=res(cpu=3),
        reserved=res(),
        allocated=res(),
        available=res(cpu=3),
        reserved_count=0,
        running_count=0,
    )
