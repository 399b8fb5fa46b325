"""The store's cache of live rows: what the orchestrator reads back is what SQLite holds,
through commits, rolled-back savepoints and batches, and other threads' open batches."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.errors import StateTransitionError
from protocol.execution import ComputeState, Execution, RunCommandResult
from protocol.history import HistoryRow
from protocol.ids import new_execution_id
from protocol.job import Job, JobStateType
from protocol.states import ExecutionDesiredStateType, ExecutionStateType
from requester.store import JobStore
from requester.store import rows as store_rows

E = ExecutionStateType
D = ExecutionDesiredStateType
J = JobStateType


def make_job() -> Job:
    task = {"Name": "main", "Engine": {"Type": "noop"}}
    return Job.from_wire({"Name": "cached", "Tasks": [task]})


def make_execution(job_id: str, node_id: str = "n-1") -> Execution:
    return Execution(
        id=new_execution_id(),
        job_id=job_id,
        node_id=node_id,
        compute_state=ComputeState(state_type=E.ASK_FOR_BID),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[JobStore]:
    with JobStore(db_path) as opened:
        yield opened


def new_job(store: JobStore) -> Job:
    job = make_job()
    return store.create_job(job.model_copy(update={"id": f"j-{id(job)}"}), "ev")


def same_as_on_disk(store: JobStore, db_path: Path, job_id: str) -> None:
    """The store's answers (cached) equal a fresh store's, which can only read the file."""
    with JobStore(db_path) as fresh:
        assert store.get_job(job_id) == fresh.get_job(job_id)
        assert store.executions(job_id) == fresh.executions(job_id)
        for execution in fresh.executions(job_id):
            assert store.get_execution(execution.id) == execution


def test_rows_read_back_from_the_cache_equal_the_rows_on_disk(
    store: JobStore, db_path: Path
) -> None:
    job = new_job(store)
    first = store.create_execution(make_execution(job.id).model_copy(update={"job": job}))
    store.update_job_state(job.id, J.RUNNING, "asked")
    store.update_execution(first.id, state=E.BID_ACCEPTED, desired=D.RUNNING, message="go")
    store.update_execution(
        first.id,
        state=E.COMPLETED,
        run_output=RunCommandResult(stdout="hi\n", exit_code=0),
        details={"k": "v"},
    )
    store.create_execution(make_execution(job.id, "n-2"))
    hits = store.stats()["CacheHits"]
    same_as_on_disk(store, db_path, job.id)
    assert store.stats()["CacheHits"] > hits, "the reads above were not served by the cache"
    assert store.get_execution(first.id).job is None, "stored (and cached) without its Job"
    assert store.get_execution(first.id, include_job=True).job == store.get_job(job.id)
    assert store.get_execution(first.id).job is None, "include_job did not touch the cache"


def test_a_job_that_ends_leaves_the_cache_with_its_executions(store: JobStore) -> None:
    jobs = [new_job(store) for _ in range(3)]
    for job in jobs:
        store.create_execution(make_execution(job.id))
    assert store.stats()["CachedJobs"] == 3
    store.update_job_state(jobs[0].id, J.RUNNING)
    store.update_job_state(jobs[0].id, J.COMPLETED)
    store.update_job_state(jobs[1].id, J.FAILED, "boom")
    assert store.stats()["CachedJobs"] == 1
    assert store.get_job(jobs[0].id).state.state_type == J.COMPLETED  # from SQLite


def test_a_rolled_back_batch_leaves_the_cache_as_it_was(store: JobStore, db_path: Path) -> None:
    job = new_job(store)
    execution = store.create_execution(make_execution(job.id))

    def failing_pass() -> None:
        with store.batch():
            store.update_job_state(job.id, J.RUNNING)
            store.update_execution(execution.id, state=E.BID_ACCEPTED)
            store.create_execution(make_execution(job.id, "n-2"))
            raise RuntimeError("the pass failed")

    with pytest.raises(RuntimeError, match="the pass failed"):
        failing_pass()
    assert store.get_job(job.id).state.state_type == J.PENDING
    assert [e.state for e in store.executions(job.id)] == [E.ASK_FOR_BID]
    same_as_on_disk(store, db_path, job.id)


def test_a_change_that_fails_inside_a_batch_is_undone_and_the_rest_kept(
    store: JobStore, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = new_job(store)
    execution = store.create_execution(make_execution(job.id))
    real_insert = store_rows.insert_history

    def failing_for_jobs(conn: sqlite3.Connection, row: HistoryRow) -> None:
        if row.execution_id == "":
            raise OSError("disk full")  # the job's history entry, after its row was written
        real_insert(conn, row)

    monkeypatch.setattr(store_rows, "insert_history", failing_for_jobs)
    with store.batch():
        with pytest.raises(OSError, match="disk full"):
            store.update_job_state(job.id, J.RUNNING)
        store.update_execution(execution.id, state=E.BID_ACCEPTED)
    monkeypatch.undo()
    assert store.get_job(job.id).state.state_type == J.PENDING
    assert store.get_execution(execution.id).state == E.BID_ACCEPTED
    same_as_on_disk(store, db_path, job.id)


def test_a_refused_compare_and_set_changes_nothing(store: JobStore, db_path: Path) -> None:
    job = new_job(store)
    execution = store.create_execution(make_execution(job.id))
    with pytest.raises(StateTransitionError):
        store.update_execution(execution.id, state=E.COMPLETED, expect=(E.RUNNING,))
    assert store.get_execution(execution.id).revision == 1
    same_as_on_disk(store, db_path, job.id)


def test_while_another_thread_writes_readers_see_only_what_was_committed(
    store: JobStore,
) -> None:
    job = new_job(store)
    written, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.batch():
            store.update_job_state(job.id, J.RUNNING)
            written.set()
            assert release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert written.wait(10)
        assert store.get_job(job.id).state.state_type == J.PENDING
    finally:
        release.set()
        thread.join(10)
    assert store.get_job(job.id).state.state_type == J.RUNNING


def test_a_restarted_store_fills_the_cache_from_its_batches(db_path: Path) -> None:
    with JobStore(db_path) as first:
        job = new_job(first)
        first.create_execution(make_execution(job.id))
    with JobStore(db_path) as second:
        assert second.stats()["CachedJobs"] == 0
        with second.batch():
            listed = second.executions(job.id)
        assert second.stats()["CachedJobs"] == 1
        assert second.executions(job.id) == listed
        assert second.get_job(job.id) == job
