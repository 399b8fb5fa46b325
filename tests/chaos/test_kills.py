"""Nodes killed with SIGKILL mid-stream, as separate OS processes over a real Redis: every
job still ends Completed, exactly once. Each test prints what became of its jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.tally import tally
from tests.support.jobs import noop_job
from tests.support.nodes import TERMINAL, NodeProc, start_node
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


def compute(tmp: Path, name: str, broker: str) -> NodeProc:
    return start_node(
        tmp, name, broker, "compute", "--limit-total-cpu", "1", "--limit-total-memory", "1Gi"
    )


def start_cluster(tmp: Path, broker: str, nodes: list[NodeProc]) -> NodeProc:
    """A requester and two compute nodes (10 slots each), all in ``nodes``."""
    requester = start_node(tmp, "requester", broker, "requester", api=True)
    nodes.append(requester)
    nodes.extend(compute(tmp, f"compute-{n}", broker) for n in range(2))
    wait_until(lambda: requester.compute_count() == 2, 30, message="2 compute nodes")
    return requester


def all_ended(requester: NodeProc, job_ids: list[str]) -> bool:
    return all(requester.job(job_id)["State"]["StateType"] in TERMINAL for job_id in job_ids)


def test_a_compute_node_killed_mid_run_its_jobs_run_elsewhere(
    tmp_path: Path, redis: RedisServer, nodes: list[NodeProc]
) -> None:
    requester = start_cluster(tmp_path, redis.url, nodes)
    job_ids = [requester.submit(noop_job(sleep_s=2.0)) for _ in range(20)]

    def running_on() -> str | None:
        for job_id in job_ids:
            for execution in requester.executions(job_id):
                if execution["ComputeState"]["StateType"] in (5, 10):  # accepted, running
                    return str(execution["NodeID"])
        return None

    victim_id = wait_until(running_on, 30, 0.05, "an execution to run")
    victim = next(node for node in nodes[1:] if node.node_id() == victim_id)
    victim.process.kill()  # SIGKILL: no goodbye, its executions just stop
    victim.process.wait()

    wait_until(lambda: all_ended(requester, job_ids), 180, 0.2, "every job to end")
    result = tally(requester, job_ids)
    print(result.line("compute kill -9 mid-run"))
    assert (result.completed, result.failed, result.lost, result.duplicated) == (20, 0, 0, 0)
    survivor = next(node for node in nodes[1:] if node is not victim)
    cut_short = [  # jobs whose run on the killed node never finished
        job_id
        for job_id in job_ids
        if any(
            e["NodeID"] == victim_id and e["ComputeState"]["StateType"] != 7
            for e in requester.executions(job_id)
        )
    ]
    assert cut_short, "no job was cut short on the killed node"
    for job_id in cut_short:
        (done,) = [e for e in requester.executions(job_id) if e["ComputeState"]["StateType"] == 7]
        assert done["NodeID"] == survivor.node_id()


def test_a_requester_killed_mid_stream_and_restarted_finishes_every_job_once(
    tmp_path: Path, redis: RedisServer, nodes: list[NodeProc]
) -> None:
    requester = start_cluster(tmp_path, redis.url, nodes)
    # 100 one-second jobs on 2 x 10 slots: about 5 s of work, killed a little way in.
    job_ids = [requester.submit(noop_job(sleep_s=1.0)) for _ in range(100)]

    def some_ended() -> int | None:
        ended = sum(requester.job(j)["State"]["StateType"] in TERMINAL for j in job_ids)
        return ended if ended >= 10 else None

    ended_before = wait_until(some_ended, 60, 0.05, "the first jobs to end")
    requester.process.kill()
    requester.process.wait()

    assert ended_before < 100, "the stream ended before the kill: nothing was tested"
    again = start_node(tmp_path, "requester", redis.url, "requester", api=True)
    nodes.append(again)
    wait_until(lambda: all_ended(again, job_ids), 180, 0.2, "every job to end")
    result = tally(again, job_ids)
    print(result.line("requester kill -9 mid-stream, restarted"))
    assert (result.completed, result.failed, result.lost, result.duplicated) == (100, 0, 0, 0)
