"""A backlog far larger than the cluster, over a real Redis: 200 jobs meet 2 compute nodes
with 4 slots each (separate processes).

The requester knows each node's room (its announcements, and what it placed and saw end
since), so it never asks a node it knows is full: every job runs with exactly one execution,
no bid is refused as busy, and no node ever holds more than its 4 slots of this requester's
executions, counted from each execution's placement to its result.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from protocol.states import ExecutionStateType as S
from tests.support.jobs import noop_job
from tests.support.nodes import NodeProc, start_node
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(300)

JOBS = 200
SLOTS = 4  # 0.4 CPU per node, 0.1 CPU per job (the default size)


@pytest.fixture
def cluster(redis: RedisServer, tmp_path: Path) -> Iterator[tuple[NodeProc, list[NodeProc]]]:
    nodes: list[NodeProc] = []
    try:
        requester = start_node(tmp_path, "requester", str(redis.url), "requester", api=True)
        nodes.append(requester)
        for index in range(2):
            limits = ("--limit-total-cpu", "400m", "--limit-total-memory", "1Gi")
            nodes.append(
                start_node(tmp_path, f"compute-{index}", str(redis.url), "compute", *limits)
            )
        wait_until(lambda: requester.compute_count() == 2, 30, message="2 compute nodes")
        yield requester, nodes[1:]
    finally:
        for node in nodes:
            node.stop()


def most_at_once(executions: list[dict[str, Any]]) -> int:
    """The most executions live at one time: from placement (CreateTime) to the result
    (the terminal state's ModifyTime); at the same instant an end comes before a start."""
    events = sorted(
        [(e["CreateTime"], 1) for e in executions] + [(e["ModifyTime"], -1) for e in executions]
    )
    live = peak = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    return peak


def test_two_hundred_jobs_on_eight_slots_run_once_each_and_never_overfill_a_node(
    cluster: tuple[NodeProc, list[NodeProc]],
) -> None:
    requester, _ = cluster
    job = noop_job(sleep_s=0.02)
    with ThreadPoolExecutor(4) as pool:
        job_ids = list(pool.map(lambda _: requester.submit(job), range(JOBS)))

    ended = [requester.wait_terminal(job_id, timeout_s=240) for job_id in job_ids]
    states = {job["State"]["StateType"] for job in ended}
    assert states == {"Completed"}, [
        job["State"] for job in ended if job["State"]["StateType"] != "Completed"
    ][:3]

    executions = [e for job_id in job_ids for e in requester.executions(job_id)]
    per_job = {job_id: 0 for job_id in job_ids}
    for execution in executions:
        per_job[execution["JobID"]] += 1
    completed = S.COMPLETED.value
    refused = [e["ComputeState"] for e in executions if e["ComputeState"]["StateType"] != completed]
    assert refused == [], "a node refused an ask or failed a run"
    assert set(per_job.values()) == {1}, "a job ran more than once"

    by_node: dict[str, list[dict[str, Any]]] = {}
    for execution in executions:
        by_node.setdefault(execution["NodeID"], []).append(execution)
    assert len(by_node) == 2, "both nodes ran jobs"
    for node_id, on_node in by_node.items():
        assert most_at_once(on_node) <= SLOTS, f"{node_id} held more than {SLOTS} executions"
