"""Losing the broker: fail over to ``peer://``, or wait for the broker to come back.

Nodes are separate processes; the Redis server is killed with SIGKILL in the middle of a
stream of jobs, so nothing gets a chance to shut down cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.brokers import Broker, peer_broker
from tests.support.jobs import noop_job
from tests.support.nodes import NodeProc, start_node
from tests.support.services import RedisServer, free_port, redis_server
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@contextmanager
def cluster(tmp: Path, url_for: list[str]) -> Iterator[list[NodeProc]]:
    """A requester on ``url_for[0]`` and a compute node on each other URL, stopped after."""
    nodes: list[NodeProc] = []
    try:
        nodes.append(start_node(tmp, "requester", url_for[0], "requester", api=True))
        for index, url in enumerate(url_for[1:]):
            nodes.append(start_node(tmp, f"compute-{index}", url, "compute"))
        wait_until(lambda: nodes[0].compute_count() == len(url_for) - 1, 30, message="nodes")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def wait_flowing(requester: NodeProc, job_id: str) -> None:
    wait_until(
        lambda: requester.job(job_id)["State"]["StateType"] == "Completed",
        60,
        message="the stream to be flowing",
    )


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def transports(requester: NodeProc) -> set[str]:
    items = requester.api.get("/api/v1/orchestrator/nodes").json()["Nodes"]
    return {item["Info"]["Transport"] for item in items if item["Connection"] == "CONNECTED"}


def submit_stream(requester: NodeProc, count: int) -> list[str]:
    return [requester.submit(noop_job(count=1, sleep_s=0.2)) for _ in range(count)]


def assert_all_completed(requester: NodeProc, job_ids: list[str]) -> None:
    for job_id in job_ids:
        job = requester.wait_terminal(job_id, 120)
        assert job["State"]["StateType"] == "Completed", job["State"]


def test_an_unreachable_broker_at_start_fails_over_to_peer(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    peers = peer_broker()
    with cluster(tmp_path, [f"{dead};{peers.url_for(i)}" for i in range(3)]) as nodes:
        requester = nodes[0]
        assert transports(requester) == {"peer"}
        assert_all_completed(requester, submit_stream(requester, 4))
        assert "event=bus_failover" in requester.log()


def test_redis_killed_mid_stream_with_a_peer_alternate_every_job_completes(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    peers: Broker = peer_broker()
    urls = [f"{own_redis.url};{peers.url_for(i)}" for i in range(4)]
    with cluster(tmp_path, urls) as nodes:
        requester = nodes[0]
        assert transports(requester) == {"redis"}
        before = submit_stream(requester, 6)
        wait_flowing(requester, before[1])
        own_redis.kill()
        after = submit_stream(requester, 6)
        assert_all_completed(requester, before + after)
        wait_until(lambda: transports(requester) == {"peer"}, 30, message="all nodes on peer")
        for node in nodes:
            assert "event=bus_failover" in node.log(), node.name


def test_redis_killed_without_an_alternate_jobs_resume_after_restart(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    with cluster(tmp_path, [own_redis.url] * 3) as nodes:
        requester = nodes[0]
        before = submit_stream(requester, 4)
        wait_flowing(requester, before[0])
        own_redis.kill()
        during = submit_stream(requester, 4)
        own_redis.restart()
        after = submit_stream(requester, 4)
        assert_all_completed(requester, before + during + after)
        assert transports(requester) == {"redis"}


def test_nodes_told_to_stop_while_the_broker_is_down_stop_cleanly(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    with cluster(tmp_path, [own_redis.url] * 2) as nodes:
        own_redis.kill()
        wait_until(
            lambda: all("event=bus_disconnected" in node.log() for node in nodes),
            30,
            message="every node to notice",
        )
        for node in nodes:
            node.process.terminate()
        for node in nodes:  # their goodbye cannot be delivered: they stop without it
            assert node.process.wait(timeout=15) == 0, node.log()
            assert "event=node_stopped" in node.log()
