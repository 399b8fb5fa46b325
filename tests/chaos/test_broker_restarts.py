"""The broker itself goes away mid-stream: Redis killed with SIGKILL (its data gone) or
RabbitMQ stopped, then started again on the same port, with 100 jobs submitted around the
outage. Nodes are separate OS processes; every job still ends Completed, exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.tally import tally
from tests.support.jobs import noop_job
from tests.support.nodes import TERMINAL, NodeProc, start_node
from tests.support.rabbitmq import rabbitmq_server
from tests.support.services import redis_server
from tests.support.wait import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]


@dataclass
class Broker:
    kind: str
    url: str
    take_down: Callable[[], None]
    bring_back: Callable[[], None]


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own: its URL, how to take it down, how to bring it back."""
    if request.param == "redis":
        with redis_server(tmp_path / "redis") as redis:
            yield Broker("redis", redis.url, redis.kill, redis.start)
    else:
        with rabbitmq_server(tmp_path / "rabbitmq") as rabbitmq:
            yield Broker("rabbitmq", rabbitmq.url, rabbitmq.stop, rabbitmq.start)


@pytest.fixture
def nodes(broker: Broker, nodes: list[NodeProc]) -> list[NodeProc]:
    """The chaos nodes, stopped while their broker is still up (it is torn down after)."""
    return nodes


def disconnected(node: NodeProc) -> bool:
    return "event=bus_disconnected" in node.log()


def test_a_broker_restarted_mid_stream_loses_and_duplicates_no_job(
    broker: Broker, tmp_path: Path, nodes: list[NodeProc]
) -> None:
    requester = start_node(tmp_path, "requester", broker.url, "requester", api=True)
    nodes.append(requester)
    for n in range(2):  # 2 x 10 slots
        limits = ("--limit-total-cpu", "1", "--limit-total-memory", "1Gi")
        nodes.append(start_node(tmp_path, f"compute-{n}", broker.url, "compute", *limits))
    wait_until(lambda: requester.compute_count() == 2, 30, message="2 compute nodes")

    before = [requester.submit(noop_job(sleep_s=0.5)) for _ in range(50)]

    def some_ended() -> bool:
        return sum(requester.job(j)["State"]["StateType"] in TERMINAL for j in before) >= 10

    wait_until(some_ended, 60, 0.05, "the first jobs to end")
    broker.take_down()
    wait_until(lambda: all(map(disconnected, nodes)), 60, 0.1, "every node to notice")
    during = [requester.submit(noop_job(sleep_s=0.5)) for _ in range(50)]  # the API stays up
    broker.bring_back()

    job_ids = before + during
    wait_until(
        lambda: all(requester.job(j)["State"]["StateType"] in TERMINAL for j in job_ids),
        180,
        0.5,
        "every job to end",
    )
    result = tally(requester, job_ids)
    print(result.line(f"{broker.kind} restarted mid-stream"))
    assert (result.completed, result.failed, result.lost, result.duplicated) == (100, 0, 0, 0)
