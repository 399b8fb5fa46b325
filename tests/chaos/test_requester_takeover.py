"""Three requesters on one PostgreSQL job store and one Redis, three compute nodes, all
separate OS processes; jobs are submitted round-robin and one requester is killed with
SIGKILL mid-stream. Its leases lapse after --lease-ttl and the survivors take its jobs over
(adopting the executions its nodes run or ran, asking again for the rest): every job ends
Completed, exactly once, and each survivor's API lists every job."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from tests.chaos.tally import tally
from tests.chaos.test_two_requesters import listed
from tests.support.jobs import noop_job
from tests.support.nodes import TERMINAL, NodeProc, start_node
from tests.support.postgres import PostgresServer
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

JOBS = 300
KILL_AFTER = 120  # submissions before the victim dies
LEASE_TTL_S = 2.0  # heartbeats every 0.5 s (tests/support/nodes.py)


def test_a_requester_killed_mid_stream_has_its_jobs_taken_over(
    tmp_path: Path, redis: RedisServer, postgres: PostgresServer, nodes: list[NodeProc]
) -> None:
    shared = ["--store", postgres.create_database(), "--lease-ttl", str(LEASE_TTL_S)]
    requesters = [
        start_node(tmp_path, f"requester-{n}", redis.url, "requester", *shared, api=True)
        for n in range(3)
    ]
    nodes.extend(requesters)
    nodes.extend(
        start_node(
            tmp_path, f"compute-{n}", redis.url, "compute", "--limit-total-cpu", "0.5"
        )  # five 0.1-CPU slots each: a backlog builds up
        for n in range(3)
    )
    wait_until(
        lambda: all(r.compute_count() == 3 for r in requesters), 30, message="3 compute nodes"
    )
    victim, survivors = requesters[0], requesters[1:]

    job = noop_job(sleep_s=0.05, Timeouts={"QueueTimeout": 240})
    submitted: dict[str, str] = {}  # job ID -> the requester that took it
    turn = itertools.cycle(requesters)
    while len(submitted) < JOBS:
        if len(submitted) == KILL_AFTER:
            victim.process.kill()  # SIGKILL: no goodbye, its leases just stop being renewed
            victim.process.wait()
        requester = next(turn)
        try:
            submitted[requester.submit(job)] = requester.name
        except httpx.TransportError:
            assert requester is victim  # refused by the dead one: the next one takes it
    theirs = [job_id for job_id, name in submitted.items() if name == victim.name]
    assert len(theirs) == KILL_AFTER // 3

    def all_ended() -> bool:
        watcher = survivors[0]
        return all(watcher.job(job_id)["State"]["StateType"] in TERMINAL for job_id in submitted)

    wait_until(all_ended, 240, 0.5, "every job to end")
    result = tally(survivors[0], submitted)
    print(result.line("requester kill -9 mid-stream, 3 requesters on PostgreSQL"))
    assert (result.completed, result.failed, result.lost, result.duplicated) == (JOBS, 0, 0, 0)
    for survivor in survivors:
        assert sorted(listed(survivor)) == sorted(submitted)
    histories = [history_of(survivors[0], job_id) for job_id in theirs]
    adopted = sum("took the job over" in history for history in histories)  # ran on
    cancelled = sum("took it over" in history for history in histories)  # asked again
    print(
        f"of the victim's {len(theirs)} jobs, {adopted} had executions adopted by the one"
        f" that took them over, {cancelled} had asks cancelled and made again"
    )
    assert "Traceback" not in "".join(node.log() for node in survivors)


def history_of(requester: NodeProc, job_id: str) -> str:
    response = requester.api.get(f"/api/v1/orchestrator/jobs/{job_id}/history")
    assert response.status_code == 200, response.text
    return response.text
