"""Requesters on one PostgreSQL job store (``--store postgresql://...``), as separate OS
processes: what one ran, another started on the same database lists and describes; each
holds a lease on the jobs it takes, renewed with its heartbeat, and a job whose requester
stopped is taken over by another."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.support.jobs import noop_job
from tests.support.nodes import NodeProc, start_node
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def listed(node: NodeProc) -> list[str]:
    response = node.api.get("/api/v1/orchestrator/jobs", params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["ID"] for item in response.json()["Items"]]


def test_a_second_requester_on_the_same_database_lists_what_the_first_ran(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    store = postgres.create_database()
    nodes: list[NodeProc] = []
    try:
        first = start_node(
            tmp_path, "first", "memory://", "requester,compute", "--store", store, api=True
        )
        nodes.append(first)
        job_id = first.submit(noop_job())
        assert first.wait_terminal(job_id)["State"]["StateType"] == "Completed"
        second = start_node(
            tmp_path, "second", "memory://", "requester", "--store", store, api=True
        )
        nodes.append(second)
        assert listed(second) == [job_id] == listed(first)
        described = second.job(job_id)
        assert described["State"]["StateType"] == "Completed"
        assert [e["ComputeState"]["StateType"] for e in second.executions(job_id)] == [7]
        # a job the second requester takes is seen by the first as well, and is leased to
        # the second, which renews the lease with its heartbeat until it stops
        queued = second.submit(noop_job())
        wait_until(lambda: queued in listed(first), 10, message="the first to list it")
        with psycopg.connect(store, autocommit=True) as conn:

            def lease() -> tuple[str, int]:
                row = conn.execute(
                    "SELECT owner, expires_at_ns FROM leases WHERE job_id = %s", (queued,)
                ).fetchone()
                assert row is not None, "no lease"
                return str(row[0]), int(row[1])

            owner, expires = lease()
            assert owner == second.node_id()
            wait_until(lambda: lease()[1] > expires, 10, message="the lease renewed")
            assert conn.execute("SELECT count(*) FROM leases").fetchone() == (1,)  # ended: none
        # Stopping releases the lease: the first requester takes the job over and, having
        # a compute node of its own (the second had none on its memory:// bus), runs it.
        second.stop()
        assert first.wait_terminal(queued)["State"]["StateType"] == "Completed"
        with psycopg.connect(store) as conn:
            assert conn.execute("SELECT count(*) FROM leases").fetchone() == (0,)  # ended
    finally:
        for node in nodes:
            node.stop()
    with psycopg.connect(store) as conn:
        assert conn.execute("SELECT id FROM jobs ORDER BY created_ns").fetchall() == [
            (job_id,),
            (queued,),
        ]
    assert (tmp_path / "data").is_dir()
    assert not list((tmp_path / "data").glob("*/jobs.db")), "no SQLite file beside PostgreSQL"
    assert "Traceback" not in "".join(node.log() for node in nodes)
