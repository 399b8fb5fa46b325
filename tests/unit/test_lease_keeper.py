"""A requester's leases are renewed on every heartbeat and released when it stops; lapsed
ones are claimed, and handed over as jobs taken over or resumed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from protocol.job import JobStateType
from requester.lease_keeper import LeaseKeeper
from requester.store import JobStore
from tests.support.stored import make_job
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.db", lease_owner="r-1", lease_ttl_s=1.0) as opened:
        yield opened


def expiry(store: JobStore, job_id: str) -> int:
    with store.database.read() as conn:
        row = conn.execute("SELECT expires_at_ns FROM leases WHERE job_id = ?", (job_id,))
        return int(row.fetchone()[0])


def test_each_heartbeat_pushes_the_leases_back_and_stopping_releases_them(
    store: JobStore,
) -> None:
    job = store.create_job(make_job(), "v")
    first = expiry(store, job.id)
    keeper = LeaseKeeper(store.leases, "r-1", ttl_s=1.0, interval_s=0.05)
    keeper.start()
    try:
        later = wait_until(lambda: expiry(store, job.id) > first, 10, message="a renewal")
        wait_until(lambda: expiry(store, job.id) > later, 10, message="another renewal")
        assert keeper.held == [job.id]
    finally:
        keeper.stop()
    assert store.leases.owner(job.id) is None
    assert store.leases.claim("r-2", [job.id], ttl_s=1.0) == [job.id]


def test_a_lease_taken_over_is_not_renewed(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    keeper = LeaseKeeper(store.leases, "r-1", ttl_s=1.0, interval_s=0.5)
    assert keeper.renew() == [job.id]
    store.leases.claim("r-2", [job.id], ttl_s=60, now_ns=job.create_time + 2 * 10**9)
    assert keeper.renew() == []
    assert store.leases.owner(job.id) == "r-2"


def test_a_ttl_a_heartbeat_outlasts_is_refused(store: JobStore) -> None:
    with pytest.raises(ValueError, match="must outlast a heartbeat"):
        LeaseKeeper(store.leases, "r-1", ttl_s=1.0, interval_s=1.0)


class Handed:
    """What a lease keeper hands its requester: jobs taken over, jobs resumed."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.resumed: list[str] = []

    def __call__(self, taken: Sequence[str], resumed: Sequence[str]) -> None:
        self.taken += taken
        self.resumed += resumed


def test_a_lapsed_lease_is_taken_over_by_the_next_requester_to_renew(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with (
        JobStore(path, lease_owner="r-1", lease_ttl_s=0.2) as first,
        JobStore(path, lease_owner="r-2", lease_ttl_s=0.2) as second,
    ):
        job = first.create_job(make_job(), "v")
        ended = first.create_job(make_job(), "v")
        first.update_job_state(ended.id, JobStateType.COMPLETED)
        handed = Handed()
        keeper = LeaseKeeper(second.leases, "r-2", ttl_s=0.2, interval_s=0.1, on_taken=handed)
        assert keeper.renew() == []  # r-1's lease is still live
        wait_until(lambda: second.leases.owner(job.id) is None, 10, message="the lease lapsed")
        assert keeper.renew() == [job.id]
        assert (handed.taken, handed.resumed) == ([job.id], [])  # an ended job is nobody's
        assert second.leases.owner(job.id) == "r-2"
        assert keeper.renew() == [job.id]  # renewed, not taken again
        assert handed.taken == [job.id]


def test_a_requester_back_after_its_leases_lapsed_resumes_its_jobs(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.db", lease_owner="r-1", lease_ttl_s=0.2) as store:
        job = store.create_job(make_job(), "v")
        wait_until(lambda: store.leases.owner(job.id) is None, 10, message="the lease lapsed")
        handed = Handed()
        keeper = LeaseKeeper(store.leases, "r-1", ttl_s=0.2, interval_s=0.1, on_taken=handed)
        assert keeper.renew() == [job.id]
        assert (handed.taken, handed.resumed) == ([], [job.id])


def test_a_job_another_requester_stopped_is_handed_over_as_ended_until_released(
    store: JobStore, tmp_path: Path
) -> None:
    ended: list[Sequence[str]] = []
    keeper = LeaseKeeper(store.leases, "r-1", ttl_s=1.0, interval_s=0.5, on_ended=ended.append)
    running, stopped = (store.create_job(make_job(), "v") for _ in range(2))
    with JobStore(tmp_path / "jobs.db", lease_owner="r-2") as other:
        other.update_job_state(stopped.id, JobStateType.STOPPED, "stopped by user")
    assert keeper.renew() == sorted([running.id, stopped.id])
    assert ended == [[stopped.id]]
    store.leases.release("r-1", [stopped.id])  # the orchestrator cancelled its executions
    assert keeper.renew() == [running.id]
    assert ended == [[stopped.id]]
