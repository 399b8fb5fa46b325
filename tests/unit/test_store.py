"""What is SQLite's own in the job store: its file (WAL, ``user_version``), its migrations of
old files, ``:memory:``; and the history's wire shape. What every backend does is in
tests/contract/test_store_contract.py."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from protocol.bookkeeping import Queueing, Verdict
from protocol.errors import BacalaoError
from protocol.history import JobHistory, format_time_ns, parse_time_ns
from protocol.job import JobStateType
from protocol.states import ExecutionStateType
from requester.store import MIGRATIONS, SCHEMA_VERSION, JobStore, StoreError
from requester.store.paging import jobs_page_query
from tests.support.stored import make_execution, make_job

E = ExecutionStateType
J = JobStateType


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "requester" / "jobs.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[JobStore]:
    with JobStore(db_path) as opened:
        yield opened


# -- jobs ---------------------------------------------------------------------------------------


def test_a_version_2_store_has_its_bookkeeping_moved_out_of_details(db_path: Path) -> None:
    """Before version 3 the scheduler kept its bookkeeping as strings in State.Details."""
    db_path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db_path)) as raw:
        with raw:
            for migration in MIGRATIONS[:2]:
                for statement in migration.sqlite:
                    raw.execute(statement)
            raw.execute("PRAGMA user_version = 2")
        job_json = make_job("j-old").to_wire()
        job_json["State"] = {
            "StateType": "Queued",
            "Message": "waiting",
            "Details": {"QueuedSince": "21", "Round": "23", "PrevRound": "22", "Retries": "4"},
        }
        execution_json = make_execution("j-old").to_wire()
        execution_json["ID"] = "e-old"
        execution_json["ComputeState"] = {
            "StateType": int(E.FAILED),
            "Message": "node n-1 restarted",
            "Details": {"Retryable": "true", "NeverRan": "true", "Other": "kept"},
        }
        with raw:
            raw.execute(
                "INSERT INTO jobs VALUES ('j-old', 'default', 'j-old', 'Queued', 1, 1, ?)",
                (json.dumps(job_json),),
            )
            raw.execute(
                "INSERT INTO executions VALUES ('e-old', 'j-old', 'n-1', ?, 2, 1, 1, ?)",
                (int(E.FAILED), json.dumps(execution_json)),
            )
    with JobStore(db_path) as store:
        migrated = store.get_job("j-old")
        assert migrated.queueing == Queueing(since_ns=21, round_ns=23, prev_round_ns=22, retries=4)
        assert migrated.state.details == {}
        assert migrated.state.message == "waiting"
        old = store.get_execution("e-old")
        assert old.verdict == Verdict(retryable=True, never_ran=True, busy=False)
        assert old.compute_state.details == {"Other": "kept"}


# -- executions ---------------------------------------------------------------------------------


# -- history ------------------------------------------------------------------------------------


def test_history_wire_round_trip() -> None:
    wire = {
        "type": "ExecutionLevel",
        "JOBID": "j-1",
        "ExecutionState": {"Previous": 5, "New": 10},
        "Time": "2024-05-01T12:00:00.5+02:00",
    }
    entry = JobHistory.from_wire(wire)
    assert entry.execution_state is not None
    assert entry.execution_state.new is E.RUNNING
    assert entry.time_ns == parse_time_ns("2024-05-01T10:00:00.500000000Z")
    assert JobHistory.from_wire(entry.to_wire()) == entry


@pytest.mark.parametrize("time_ns", [0, 1, 1_714_564_800_123_456_789, 1_714_564_800_000_000_000])
def test_time_format_round_trips_nanoseconds(time_ns: int) -> None:
    text = format_time_ns(time_ns)
    assert text.endswith("Z")
    assert parse_time_ns(text) == time_ns


def test_time_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time_ns("yesterday")


# -- durability and concurrency -----------------------------------------------------------------


def test_the_file_is_wal_at_the_current_schema_version(db_path: Path) -> None:
    with JobStore(db_path) as store:
        store.create_job(make_job(), "v")
    with closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize("url", ["sqlite:///{path}", "sqlite:///{path}?", "{path}"])
def test_a_path_or_a_sqlite_url_names_the_same_file(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.chdir(db_path.parent.parent)
    relative = f"{db_path.parent.name}/{db_path.name}"
    with JobStore(db_path) as first:
        job = first.create_job(make_job(), "v")
    target = url.format(path=relative).rstrip("?")
    with JobStore(target) as second:
        assert second.get_job(job.id).id == job.id
    with JobStore(f"sqlite:///{db_path}".replace("sqlite:///", "sqlite:////", 1)) as third:
        assert third.get_job(job.id).id == job.id


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("mysql://db/jobs", "unknown store scheme 'mysql'"),
        ("sqlite://host/jobs.db", "names a host"),
    ],
)
def test_a_target_that_names_no_store_is_refused(target: str, problem: str) -> None:
    with pytest.raises(StoreError, match=problem):
        JobStore(target)


def test_sqlite_memory_urls_keep_the_store_in_memory() -> None:
    for target in ("sqlite://", "sqlite:///:memory:"):
        with JobStore(target) as store:
            job = store.create_job(make_job(), "v")
            assert store.get_job(job.id).id == job.id


def test_newer_schema_is_refused(db_path: Path) -> None:
    JobStore(db_path).close()
    with closing(sqlite3.connect(db_path)) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BacalaoError, match="newer than this bacalao"):
        JobStore(db_path)


def test_memory_store_works() -> None:
    with JobStore(":memory:") as store:
        job = store.create_job(make_job(), "v")
        assert store.get_job(job.id).id == job.id


@pytest.mark.parametrize("namespace", [None, "default"])
@pytest.mark.parametrize("column", ["created_ns", "modified_ns", "id"])
@pytest.mark.parametrize("reverse", [True, False])
def test_a_page_of_jobs_is_read_from_an_index_not_sorted(
    db_path: Path, namespace: str | None, column: str, reverse: bool
) -> None:
    """O(page), not O(jobs stored): no ordering that the list offers by time or ID makes
    SQLite sort the whole table."""
    JobStore(str(db_path)).close()
    sql, params = jobs_page_query(
        column=column, labels_sql="NULL", namespace=namespace, after=None, reverse=reverse, limit=10
    )
    with closing(sqlite3.connect(db_path)) as raw:
        plan = " ".join(str(row[-1]) for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "TEMP B-TREE" not in plan, plan
