"""Restarts: a requester resumes its jobs from SQLite, and an execution cut short by a node
shutting down is retried instead of failing the job."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from cli.devstack import Devstack
from cli.stack import NodeOptions, NodeProcess
from tests.support.identities import TOKEN
from tests.support.jobs import noop_job
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def state_of(port: int, job_id: str) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        job = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()["Job"]
    return str(job["State"]["StateType"])


def test_jobs_survive_a_whole_cluster_restart(tmp_path: Path) -> None:
    options = NodeOptions(name="requester", data_dir=tmp_path, api_port=0, heartbeat_interval_s=0.2)
    first = Devstack(options, compute_nodes=1)
    first.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{first.api_port}") as client:
            response = client.put("/api/v1/orchestrator/jobs", json={"Job": noop_job(sleep_s=30)})
            job_id = response.json()["JobID"]
        wait_until(lambda: state_of(first.api_port, job_id) == "Running", 20)
    finally:
        first.stop()

    second = Devstack(options, compute_nodes=1)
    second.start()
    try:
        wait_until(lambda: state_of(second.api_port, job_id) == "Running", 20)
        with httpx.Client(base_url=f"http://127.0.0.1:{second.api_port}") as client:
            executions = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()
        items = executions["Items"]
        messages = [e["ComputeState"]["Message"] for e in items]
        assert any("shut down during the run" in m for m in messages), messages
        # ...and it runs again: one execution the requester wants running (DesiredState 1).
        assert [e["DesiredState"]["StateType"] for e in items].count(1) == 1, items
    finally:
        second.stop()


def test_a_requester_restarted_under_a_running_job_waits_for_its_node_instead_of_rerunning(
    tmp_path: Path, redis: RedisServer
) -> None:
    """The compute node keeps running while the requester is away; the restarted requester
    must not fail the execution for a node it has simply not heard from yet."""
    common = NodeOptions(
        name="-", data_dir=tmp_path, broker=redis.url, heartbeat_interval_s=0.2, cluster_token=TOKEN
    )
    requester_options = replace(common, name="requester", compute=False, api_port=0)
    compute = NodeProcess(replace(common, name="compute", requester=False))
    first = NodeProcess(requester_options)
    compute.start()
    first.start()
    second: NodeProcess | None = None
    try:
        first.wait_for_compute_nodes(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{first.api_port}") as client:
            response = client.put("/api/v1/orchestrator/jobs", json={"Job": noop_job(sleep_s=8)})
            job_id = response.json()["JobID"]
        assert first.api_port is not None
        wait_until(lambda: state_of(first.api_port or 0, job_id) == "Running", 20)
        running_at = time.monotonic()
        first.stop()

        second = NodeProcess(requester_options)
        second.start()
        # The restart must land while the run goes on, or this test proves nothing.
        assert time.monotonic() - running_at < 6, "the run ended before the requester came back"
        port = second.api_port or 0
        wait_until(lambda: state_of(port, job_id) == "Completed", 30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            executions = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()
        runs = [(e["NodeID"], e["ComputeState"]["StateType"]) for e in executions["Items"]]
        assert runs == [(compute.node_id, 7)], runs  # one execution, Completed, never re-run
    finally:
        if second is not None:
            second.stop()
        compute.stop()


def test_a_new_requester_learns_of_running_compute_nodes_at_once(tmp_path: Path) -> None:
    """Compute nodes announce themselves again when they hear a requester they do not know
    (new, or restarted): it need not wait for their next periodic NodeInfo."""
    slow = NodeOptions(  # NodeInfo every 30 min
        name="-", data_dir=tmp_path, heartbeat_interval_s=600.0, cluster_token=TOKEN
    )
    compute = NodeProcess(replace(slow, name="compute", requester=False))
    compute.start()
    requester = NodeProcess(replace(slow, name="requester", compute=False, api_port=0))
    try:
        requester.start()
        requester.wait_for_compute_nodes(1, timeout_s=10)
    finally:
        requester.stop()
        compute.stop()
