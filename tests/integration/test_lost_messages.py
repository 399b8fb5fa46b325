"""A result that never arrives (the broker lost it) does not leave a job Running forever:
the node's heartbeats stop listing the execution, and the requester retries it elsewhere."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from cli.devstack import Devstack
from cli.stack import NodeOptions
from compute.config import Outbox
from protocol.messages import Message, RunResult
from tests.support.jobs import noop_job
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class LosesFirstResult:
    """Outboxes sharing ``dropped``: the first RunResult any of them is given is dropped, as
    a broker that restarted empty would."""

    lock = threading.Lock()

    def __init__(self, inner: Outbox, dropped: list[str]) -> None:
        self._inner = inner
        self.dropped = dropped

    def send(self, node_id: str, message: Message) -> None:
        with self.lock:
            if isinstance(message, RunResult) and not self.dropped:
                self.dropped.append(message.execution_id)
                return
        self._inner.send(node_id, message)

    def hold(self, node_id: str, message: Message, key: str, delay_s: float) -> None:
        self._inner.hold(node_id, message, key, delay_s)

    def drop(self, key: str) -> bool:
        return self._inner.drop(key)

    def release(self, key: str) -> None:
        self._inner.release(key)


def test_a_lost_run_result_is_noticed_and_the_job_completes_elsewhere(tmp_path: Path) -> None:
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path,
        api_port=0,
        heartbeat_interval_s=0.2,
        lost_execution_grace_s=1.0,
        finished_memory_s=0.5,
    )
    stack = Devstack(options, compute_nodes=2)
    stack.start()
    try:
        dropped: list[str] = []
        for node in stack.computes:
            assert node.compute is not None
            node.compute._outbox = LosesFirstResult(node.compute._outbox, dropped)
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}") as client:
            job_id = client.put("/api/v1/orchestrator/jobs", json={"Job": noop_job()}).json()[
                "JobID"
            ]

            def ended() -> dict[str, object] | None:
                job = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()["Job"]
                return job if job["State"]["StateType"] in ("Completed", "Failed") else None

            job = wait_until(ended, 30, message="the job to end")
            executions = client.get(f"/api/v1/orchestrator/jobs/{job_id}/executions").json()
        assert job["State"]["StateType"] == "Completed", job["State"]  # type: ignore[index]
        assert len(dropped) == 1
        by_id = {e["ID"]: e for e in executions["Items"]}
        lost = by_id[dropped[0]]["ComputeState"]
        assert lost["StateType"] == 8, lost
        assert "no longer has it" in lost["Message"], lost
        assert sum(e["ComputeState"]["StateType"] == 7 for e in executions["Items"]) == 1
    finally:
        stack.stop()
