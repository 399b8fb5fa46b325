"""Requesters on one PostgreSQL job store (``--store postgresql://...``), as separate OS
processes: what one ran, another started on the same database lists and describes; each
holds a lease on the jobs it takes, renewed with its heartbeat, and a job whose requester
stopped is taken over by another."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from protocol.states import ExecutionStateType as E
from tests.support.jobs import noop_job
from tests.support.nodes import NodeProc, start_node
from tests.support.postgres import PostgresServer
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RUNNING, CANCELLED = int(E.RUNNING), int(E.CANCELLED)


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


def test_a_job_stopped_through_another_requester_is_cancelled_by_the_one_that_asked(
    postgres: PostgresServer, redis: RedisServer, tmp_path: Path
) -> None:
    """Compute nodes take a cancel only from the requester that asked: a stop through any
    requester's API reaches the one that follows the job (through the store: it keeps its
    lease, sees the job ended at its next beat and cancels), and the run ends on its node.
    Logs of a running execution the other requester refuses, naming the one to ask."""
    store = postgres.create_database()
    nodes: list[NodeProc] = []
    try:
        asker, stopper = (
            start_node(tmp_path, name, redis.url, "requester", "--store", store, api=True)
            for name in ("asker", "stopper")
        )
        nodes += [asker, stopper]
        compute = start_node(tmp_path, "compute", redis.url, "compute")
        nodes.append(compute)
        wait_until(lambda: asker.compute_count() == 1, 30, message="the compute node")
        job_id = asker.submit(noop_job(sleep_s=120))
        wait_until(
            lambda: [e["ComputeState"]["StateType"] for e in asker.executions(job_id)] == [RUNNING],
            30,
            message="the job running",
        )
        # a running execution's output streams only to the requester that asked for it
        refused = stopper.api.get(f"/api/v1/orchestrator/jobs/{job_id}/logs")
        assert refused.status_code == 409, refused.text
        assert f"runs for requester {asker.node_id()}" in refused.text
        assert stopper.api.delete(f"/api/v1/orchestrator/jobs/{job_id}").status_code == 200
        assert asker.job(job_id)["State"]["StateType"] == "Stopped"
        wait_until(
            lambda: "event=cancel execution=" in compute.log(), 30, message="the node to cancel"
        )
        wait_until(
            lambda: (
                [e["ComputeState"]["StateType"] for e in stopper.executions(job_id)] == [CANCELLED]
            ),
            10,
            message="the execution recorded as cancelled",
        )
        with psycopg.connect(store, autocommit=True) as conn:
            wait_until(
                lambda: conn.execute("SELECT count(*) FROM leases").fetchone() == (0,),
                10,
                message="the asker to let the lease go",
            )
    finally:
        for node in nodes:
            node.stop()
    logs = "".join(node.log() for node in nodes)
    assert "message_from_wrong_node" not in logs
    assert "Traceback" not in logs
