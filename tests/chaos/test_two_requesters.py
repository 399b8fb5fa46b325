"""Two requesters place Count=2 jobs on the same three small compute nodes at once, as
separate OS processes over a real Redis: every job completes on two different nodes, and
no node, by its own records, ever ran more than its capacity. Each requester has a job store
of its own, or both share one PostgreSQL database (then each also lists the other's jobs)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from tests.chaos.tally import COMPLETED, Tally, tally
from tests.support.activity import peak_cpu, runs_of
from tests.support.jobs import noop_job
from tests.support.nodes import NodeProc, start_node
from tests.support.postgres import PostgresServer
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

NODE_CPU = 1.0  # --limit-total-cpu of each compute node
JOB_CPU = 0.5  # two slots a node


def listed(requester: NodeProc) -> list[str]:
    """Every job the requester's API lists, page by page."""
    found: list[str] = []
    token = ""
    while True:
        params: dict[str, str | int] = {"limit": 100}
        if token:
            params["next_token"] = token
        page = requester.api.get("/api/v1/orchestrator/jobs", params=params).json()
        found += [item["ID"] for item in page["Items"]]
        token = page.get("NextToken") or ""
        if not token:
            return found


def ended_tally(requester: NodeProc, job_ids: list[str]) -> Tally | None:
    result = tally(requester, job_ids, count=2)
    return result if result.lost == 0 else None


@pytest.mark.parametrize(("store", "jobs_per_requester"), [("own", 200), ("postgresql", 60)])
def test_two_requesters_never_over_commit_three_two_slot_nodes(
    tmp_path: Path,
    redis: RedisServer,
    nodes: list[NodeProc],
    request: pytest.FixtureRequest,
    store: str,
    jobs_per_requester: int,
) -> None:
    shared: list[str] = []
    if store == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        shared = ["--store", postgres.create_database()]
    # Both requesters share the data dir, so the second joins with the first one's token.
    requesters = [
        start_node(tmp_path, f"requester-{n}", redis.url, "requester", *shared, api=True)
        for n in range(2)
    ]
    nodes.extend(requesters)
    computes = [
        start_node(
            tmp_path,
            f"compute-{n}",
            redis.url,
            "compute",
            "--limit-total-cpu",
            str(NODE_CPU),
            "--limit-total-memory",
            "1Gi",
        )
        for n in range(3)
    ]
    nodes.extend(computes)
    wait_until(
        lambda: all(r.compute_count() == 3 for r in requesters), 30, message="3 compute nodes"
    )

    job = noop_job(
        count=2, sleep_s=0.05, Resources={"CPU": f"{JOB_CPU}"}, Timeouts={"QueueTimeout": 240}
    )
    with ThreadPoolExecutor(8) as pool:
        submitted = {
            requester.name: list(pool.map(requester.submit, [job] * jobs_per_requester))
            for requester in requesters
        }

    for requester in requesters:
        mine = submitted[requester.name]
        result = wait_until(
            partial(ended_tally, requester, mine), 240, 0.5, f"every job of {requester.name} to end"
        )
        print(result.line(f"{requester.name}, Count=2 on 3 x 2 slots"))
        assert (result.completed, result.failed, result.lost, result.duplicated) == (
            jobs_per_requester,
            0,
            0,
            0,
        )
        for job_id in mine[:20]:  # each on two different nodes
            done = [
                e["NodeID"]
                for e in requester.executions(job_id)
                if e["ComputeState"]["StateType"] == COMPLETED
            ]
            assert len(set(done)) == 2, done

    if shared:  # one store: each requester's API lists every job, its own and the other's
        everything = sorted(job_id for mine in submitted.values() for job_id in mine)
        for requester in requesters:
            assert sorted(listed(requester)) == everything

    peaks = {node.name: peak_cpu(runs_of(node.data_dir)) for node in computes}
    print(f"peak CPU held at once, by the nodes' own records: {peaks}")
    total_runs = sum(len(runs_of(node.data_dir)) for node in computes)
    assert total_runs >= 2 * 2 * jobs_per_requester  # every completed run is on record
    for name, peak in peaks.items():
        assert peak <= NODE_CPU + 1e-9, f"{name} ran {peak} CPUs of jobs at once on {NODE_CPU}"
    assert max(peaks.values()) == pytest.approx(NODE_CPU), "no node was ever full: untested"
