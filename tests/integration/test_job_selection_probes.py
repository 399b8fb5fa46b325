"""The operator's probes decide in a real in-process devstack: compute-0's exec probe refuses
every job, compute-1's only jobs labelled ``gpu=yes``; a job runs where the probes let it, and
one nobody takes fails with each node's reason, in the job, its executions and its history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.devstack import Devstack
from cli.stack import NodeOptions
from compute.bidding.selection import JobSelection
from tests.support.api import run_job
from tests.support.jobs import noop_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NEVER = "echo 'maintenance window' >&2; exit 1"
GPU_ONLY = (
    'case "$BACALHAU_JOB_SELECTION_PROBE_DATA" in *\'"gpu": "yes"\'*) exit 0;; esac; '
    "echo 'not a GPU job' >&2; exit 1"
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Devstack]:
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path / "stack",
        api_port=0,
        heartbeat_interval_s=0.2,
        default_queue_timeout_s=1.0,
    )
    overrides = [
        {"job_selection": JobSelection(probe_exec=NEVER)},
        {"job_selection": JobSelection(probe_exec=GPU_ONLY)},
    ]
    with Devstack(options, compute_nodes=2, compute_overrides=overrides) as running:
        yield running


def test_probes_decide_where_a_job_runs_and_say_why_not(stack: Devstack) -> None:
    never, gpu = (node.node_id for node in stack.computes)
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}") as client:
        gpu_job = {**noop_job(), "Labels": {"gpu": "yes"}}
        job_id, ended = run_job(client, gpu_job)
        assert ended["State"]["StateType"] == "Completed"
        runs = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()["Items"]
        assert {r["NodeID"] for r in runs if r["ComputeState"]["StateType"] == 7} == {gpu}

        job_id, ended = run_job(client, noop_job())
        assert ended["State"]["StateType"] == "Failed"
        message = ended["State"]["Message"]
        assert f"{never}: job selection probe" in message
        assert "maintenance window" in message
        assert f"{gpu}: job selection probe" in message
        assert "not a GPU job" in message
        history = client.get(f"/api/v1/orchestrator/jobs/{job_id}/history").json()["Items"]
    refusals = [
        entry
        for entry in history
        if entry.get("ExecutionID") and "said no" in str(entry["Event"]["Message"])
    ]
    assert {entry["NodeID"] for entry in refusals} == {never, gpu}
