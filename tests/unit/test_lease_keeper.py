"""A requester's leases are renewed on every heartbeat and released when it stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
