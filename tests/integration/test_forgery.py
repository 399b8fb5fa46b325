"""Forged results and bids, injected straight into the broker, change no job's outcome: an
unsigned message naming the compute node, one signed by a node without the cluster token,
and one from an admitted node that is not the execution's, which is then replayed byte for
byte; and, with an approval round, bids refused in the asked nodes' names (real Redis,
default security)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from cli.devstack import Devstack
from cli.security import read_token_file
from cli.stack import NodeOptions, NodeProcess
from protocol.envelope import Codec, Envelope
from protocol.execution import RunCommandResult
from protocol.identity import NodeIdentity
from protocol.messages import AskForBid, BidResult, ExecutionStarted, Message, RunResult
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


class AskGate:
    """Holds a compute node's AskForBid messages until :meth:`release`; the rest pass."""

    def __init__(self, node: NodeProcess) -> None:
        self._node = node
        self._handler = node.dispatcher.compute
        self.held: list[Envelope] = []
        self._lock = threading.Lock()
        self._open = False
        node.dispatcher.compute = self

    def __call__(self, envelope: Envelope) -> None:
        with self._lock:
            if not self._open and envelope.type == "AskForBid":
                self.held.append(envelope)
                return
        assert self._handler is not None
        self._handler(envelope)

    def release(self) -> None:
        with self._lock:
            self._open = True
            held, self.held = self.held, []
        assert self._handler is not None
        for envelope in held:
            self._handler(envelope)


def test_forged_bids_change_no_outcome(tmp_path: Path, redis: RedisServer) -> None:
    """With an approval round (over-ask 2, two nodes asked): an admitted node that is not the
    executions' refuses both bids in their nodes' names, and claims one run started and
    finished. Its messages reach the requester's queue before the real bids (the asks are held
    until they are sent, and the queue is FIFO), and none of them counts."""
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path,
        broker=redis.url,
        api_port=0,
        heartbeat_interval_s=0.2,
        over_ask=2,
    )
    stack = Devstack(options, compute_nodes=2)
    stack.start()
    token = read_token_file(tmp_path)
    assert token is not None
    gates = [AskGate(node) for node in stack.computes]
    insider = signed_codec(NodeIdentity.generate(), token)
    bus = Bus(redis.url, insider.sender, ignore, insider, BusOptions())
    bus.start()
    try:
        requester = stack.requester.node_id
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}") as client:
            job = {"Job": noop_job(sleep_s=0.2)}
            job_id = client.put("/api/v1/orchestrator/jobs", json=job).json()["JobID"]
            wait_until(lambda: all(gate.held for gate in gates), 30, message="both asks held")
            asked = [gate.held[0].payload for gate in gates]
            executions = [ask.execution.id for ask in asked if isinstance(ask, AskForBid)]
            assert len(executions) == 2
            forged: list[Message] = [
                BidResult(execution_id=e, job_id=job_id, accepted=False, reason="forged refusal")
                for e in executions
            ]
            forged += [
                ExecutionStarted(execution_id=executions[0], job_id=job_id),
                forged_result(executions[0], job_id),
            ]
            for message in forged:
                bus.publish_raw(insider.encode(message, requester), requester)
            for gate in gates:
                gate.release()

            def ended() -> dict[str, object] | None:
                found = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()["Job"]
                return found if found["State"]["StateType"] in ("Completed", "Failed") else None

            ended_job = wait_until(ended, 30, message="the job to end")
            runs = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()["Items"]
            history = client.get(f"/api/v1/orchestrator/jobs/{job_id}/history").json()["Items"]
        assert ended_job["State"]["StateType"] == "Completed"  # type: ignore[index]
        assert sorted(run["ID"] for run in runs) == sorted(executions), "nobody was re-asked"
        states = sorted(run["ComputeState"]["StateType"] for run in runs)
        # the other: its bid rejected (6) or, still unanswered when one was accepted,
        # its ask cancelled (9), as enough bids were accepted
        assert states in ([6, 7], [7, 9]), states
        (done,) = [run for run in runs if run["ComputeState"]["StateType"] == 7]
        assert done["RunOutput"]["Stdout"] == "ok\n"
        assert "forged" not in json.dumps(history)
    finally:
        bus.close()
        stack.stop()
