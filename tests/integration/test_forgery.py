"""Forged results, injected straight into the broker, change no job's outcome: an unsigned
message naming the compute node, one signed by a node without the cluster token, and one
from an admitted node that is not the execution's, which is then replayed byte for byte
(real Redis, default security)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cli.devstack import Devstack
from cli.security import read_token_file
from cli.stack import NodeOptions
from protocol.envelope import Codec, Envelope
from protocol.execution import RunCommandResult
from protocol.identity import NodeIdentity
from protocol.messages import RunResult
from protocol.signing import UNSIGNED
from protocol.transport import Bus, BusOptions
from tests.support.identities import signed_codec
from tests.support.jobs import noop_job
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def forged_result(execution_id: str, job_id: str) -> RunResult:
    output = RunCommandResult(stdout="forged\n", exit_code=0)
    return RunResult(execution_id=execution_id, job_id=job_id, run_output=output)


def ignore(envelope: Envelope) -> None:
    del envelope


def test_forged_results_change_no_outcome(tmp_path: Path, redis: RedisServer) -> None:
    options = NodeOptions(
        name="requester", data_dir=tmp_path, broker=redis.url, api_port=0, heartbeat_interval_s=0.2
    )
    stack = Devstack(options, compute_nodes=1)
    stack.start()
    token = read_token_file(tmp_path)
    assert token is not None, "the requester made the cluster's token in its data dir"
    compute_id = stack.computes[0].node_id
    insider = NodeIdentity.generate()
    forgers = {
        "unsigned, naming the compute node": Codec(compute_id),
        "signed without the token": signed_codec(NodeIdentity.generate(), "bct-not-this-token"),
        "an admitted node, not the execution's": signed_codec(insider, token),
    }
    buses = [
        Bus(redis.url, codec.sender, ignore, codec, BusOptions()) for codec in forgers.values()
    ]
    try:
        for bus in buses:
            bus.start()
        requester = stack.requester
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}") as client:
            job = {"Job": noop_job(sleep_s=1.5)}
            job_id = client.put("/api/v1/orchestrator/jobs", json=job).json()["JobID"]

            def running_execution() -> str | None:
                items = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()
                accepted = (5, 10)  # BidAccepted, Running: the result is still to come
                states = {e["ID"]: e["ComputeState"]["StateType"] for e in items["Items"]}
                started = [execution for execution, state in states.items() if state in accepted]
                return started[0] if started else None

            execution_id = wait_until(running_execution, 30, message="the execution to run")
            dropped_before = requester.bus.dropped
            for bus, codec in zip(buses, forgers.values(), strict=True):
                frame = codec.encode(forged_result(execution_id, job_id), requester.node_id)
                bus.publish_raw(frame, requester.node_id)
            buses[-1].publish_raw(frame, requester.node_id)  # the insider's, replayed

            def ended() -> dict[str, object] | None:
                found = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()["Job"]
                return found if found["State"]["StateType"] in ("Completed", "Failed") else None

            ended_job = wait_until(ended, 30, message="the job to end")
            results = client.get(f"/api/v1/orchestrator/jobs/{job_id}/results").json()
            executions = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()
        assert ended_job["State"]["StateType"] == "Completed"  # type: ignore[index]
        (run,) = executions["Items"]
        assert run["RunOutput"]["Stdout"] == "ok\n", "the real result, not a forged one"
        assert results["Items"], "the real node's published result"
        assert requester.bus.dropped - dropped_before == 3, "refused before decoding"
        verifier = requester.bus._codec.verifier
        assert verifier is not None
        insider_id = forgers["an admitted node, not the execution's"].sender
        stranger_id = forgers["signed without the token"].sender
        assert verifier.refused == {UNSIGNED: 1, stranger_id: 1, insider_id: 1}  # the replay
    finally:
        for bus in buses:
            bus.close()
        stack.stop()
