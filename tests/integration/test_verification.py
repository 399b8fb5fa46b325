"""Verification end to end over real Redis: three compute nodes run a job that asks for
it, one of them (a node option meant for tests) returns a different result; the majority's
result stands, the odd one is marked mismatched, its node's reputation drops, and only the
majority's results are the job's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.devstack import Devstack
from cli.stack import NodeOptions
from protocol.states import ExecutionStateType
from protocol.verification import VERIFY_KEY
from tests.support.api import run_job
from tests.support.jobs import wasm_job
from tests.support.services import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def stack(tmp_path: Path, redis: RedisServer) -> Iterator[Devstack]:
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path / "stack",
        broker=redis.url,
        api_port=0,
        heartbeat_interval_s=0.2,
    )
    overrides = [{}, {}, {"tamper_results": True}]
    with Devstack(options, compute_nodes=3, compute_overrides=overrides) as running:
        yield running


def test_the_majority_result_stands_and_the_odd_node_pays(stack: Devstack) -> None:
    tampering = stack.computes[2].node_id
    job = wasm_job(args=["verified"], count=3)
    job["Meta"] = {VERIFY_KEY: "deterministic"}
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=10) as client:
        job_id, ended = run_job(client, job, timeout_s=60)
        assert ended["State"]["StateType"] == "Completed", ended["State"]
        executions = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()
        runs = {e["NodeID"]: e for e in executions["Items"]}
        assert len(runs) == 3
        hashes = {node: e["ComputeState"]["Details"]["ResultHash"] for node, e in runs.items()}
        honest = {h for node, h in hashes.items() if node != tampering}
        assert len(honest) == 1  # the two honest nodes agree
        (majority,) = honest
        assert hashes[tampering] != majority
        odd = runs[tampering]["ComputeState"]
        assert odd["StateType"] == ExecutionStateType.COMPLETED  # it ran: it just disagrees
        assert f"differs from the majority's {majority}" in odd["Message"]

        results = client.get(f"/api/v1/orchestrator/jobs/{job_id}/results").json()["Items"]
        assert len(results) == 2  # the majority's only

        nodes = client.get("/api/v1/orchestrator/nodes").json()["Nodes"]
        scores = {n["Info"]["NodeID"]: n.get("Reputation") for n in nodes}
        assert scores[tampering]["Failed"] > 0.99  # one, decayed a little since
        assert scores[tampering]["Completed"] < 0.01  # its completion no longer counts
        assert scores[tampering]["Score"] < 0.5
        for node in runs:
            if node != tampering:
                assert scores[node]["Score"] > 0.5
