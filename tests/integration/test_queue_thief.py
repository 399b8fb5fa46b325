"""A rogue consumer on a compute node's queue (real Redis, default security) can neither read
what it steals (asks are sealed to the node) nor change any job's outcome: the asks it
swallows time out and are asked again, and every job completes on the real node with the
real output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.devstack import Devstack
from cli.stack import NodeOptions
from protocol.envelope import Codec, Envelope
from protocol.sealing import SEALED_MAGIC
from protocol.transport import Bus, BusOptions
from tests.support.jobs import noop_job
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
JOBS = "/api/v1/orchestrator/jobs"


class RecordingCodec(Codec):
    """Keeps every frame it is handed, before decoding it (or failing to)."""

    def __init__(self, sender: str) -> None:
        super().__init__(sender)
        self.frames: list[bytes] = []

    def decode_all(self, data: bytes | str) -> list[Envelope]:
        self.frames.append(data.encode() if isinstance(data, str) else bytes(data))
        return super().decode_all(data)


def test_a_queue_thief_reads_nothing_and_changes_no_outcome(
    tmp_path: Path, redis: RedisServer
) -> None:
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path,
        broker=redis.url,
        api_port=0,
        heartbeat_interval_s=0.2,
        bid_timeout_s=1.0,
        queue_backoff_s=0.1,  # re-ask soon after a swallowed ask times out
    )
    stack = Devstack(options, compute_nodes=1)
    stack.start()
    compute_id = stack.computes[0].node_id
    # It reads the node's queue as the node would, with a codec that checks nothing.
    thief_codec = RecordingCodec(compute_id)
    read: list[Envelope] = []
    thief = Bus(redis.url, compute_id, read.append, thief_codec, BusOptions())
    try:
        thief.start()
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=30) as api:
            job_ids = [api.put(JOBS, json={"Job": noop_job()}).json()["JobID"] for _ in range(10)]

            def ended() -> list[dict[str, Any]] | None:
                jobs = [api.get(f"{JOBS}/{job_id}").json()["Job"] for job_id in job_ids]
                done = all(j["State"]["StateType"] in ("Completed", "Failed") for j in jobs)
                return jobs if done else None

            jobs = wait_until(ended, 150, 0.1, "every job to end")
            runs = {
                job_id: api.get(f"{JOBS}/{job_id}/executions").json()["Items"] for job_id in job_ids
            }
        sealed = [frame for frame in thief_codec.frames if frame.startswith(SEALED_MAGIC)]
        assert sealed, "the thief swallowed no direct message: the test proved nothing"
        for frame in sealed:
            assert not any(job_id.encode() in frame for job_id in job_ids), frame[:200]
        # What it could decode is gossip (signed plaintext) only: never an ask or a job.
        assert {e.type for e in read} <= {"NodeInfo", "Heartbeat"}, {e.type for e in read}
        assert [job["State"]["StateType"] for job in jobs] == ["Completed"] * 10, jobs
        for job_id, executions in runs.items():
            completed = [e for e in executions if e["ComputeState"]["StateType"] == 7]
            assert len(completed) == 1, (job_id, executions)
            assert completed[0]["NodeID"] == compute_id
            assert completed[0]["RunOutput"]["Stdout"] == "ok\n"
    finally:
        thief.close()
        stack.stop()
