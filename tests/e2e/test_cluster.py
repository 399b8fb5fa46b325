"""One requester and three compute nodes as separate OS processes, over every transport.

The same scenario runs unchanged over a real Redis, a real RabbitMQ and broker-free
``peer://``: only the ``--broker`` URL each process gets differs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cli.security import read_token_file
from protocol.identity import NodeIdentity
from protocol.transport import Bus, BusOptions
from tests.support.activity import peak_cpu, runs_of
from tests.support.brokers import TRANSPORTS, Broker, peer_broker, shared_broker
from tests.support.identities import signed_codec
from tests.support.jobs import noop_job, wasm_job
from tests.support.nodes import NodeProc, start_node
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module", params=TRANSPORTS)
def broker(request: pytest.FixtureRequest) -> Broker:
    name = str(request.param)
    if name == "peer":
        return peer_broker()
    server = request.getfixturevalue("redis" if name == "redis" else "rabbitmq")
    return shared_broker(name, str(server.url))


@pytest.fixture(scope="module")
def cluster(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[NodeProc, list[NodeProc]]]:
    tmp = tmp_path_factory.mktemp(f"cluster-{broker.name}")
    nodes: list[NodeProc] = []
    try:
        requester = start_node(tmp, "requester", broker.url_for(0), "requester", api=True)
        nodes.append(requester)
        for index in range(3):
            nodes.append(
                start_node(
                    tmp,
                    f"compute-{index}",
                    broker.url_for(index + 1),
                    "compute",
                    "--limit-total-cpu",
                    "1",
                    "--limit-total-memory",
                    "1Gi",
                    "--labels",
                    f"zone=z{index}",
                )
            )
        wait_until(lambda: requester.compute_count() == 3, 30, message="3 compute nodes")
        yield requester, nodes[1:]
    finally:
        for node in nodes:
            node.stop()


def test_every_node_reports_the_transport_in_use(
    broker: Broker, cluster: tuple[NodeProc, list[NodeProc]]
) -> None:
    requester, _ = cluster
    items = requester.api.get("/api/v1/orchestrator/nodes").json()["Nodes"]
    assert len(items) == 4
    expected = {"redis": "redis", "amqp": "amqp", "peer": "peer"}[broker.name]
    assert {item["Info"]["Transport"] for item in items} == {expected}
    if broker.name == "peer":
        assert all(item["Info"]["PeerAddress"].startswith("127.0.0.1:") for item in items)


def test_the_requester_api_serves_only_its_token(
    cluster: tuple[NodeProc, list[NodeProc]],
) -> None:
    requester, _ = cluster
    before = requester.api.get("/api/v1/orchestrator/jobs").json()["Items"]
    with httpx.Client(base_url=requester.api_url, timeout=10) as stranger:
        assert stranger.get("/api/v1/agent/alive").status_code == 200
        put = stranger.put("/api/v1/orchestrator/jobs", json={"Job": noop_job()})
        assert put.status_code == 401, put.text
        wrong = {"Authorization": "Bearer not-the-token-of-this-requester"}
        listed = stranger.get("/api/v1/orchestrator/jobs", headers=wrong)
        assert listed.status_code == 401
    after = requester.api.get("/api/v1/orchestrator/jobs").json()["Items"]
    assert [job["ID"] for job in after] == [job["ID"] for job in before]


def test_twenty_jobs_with_count_two_each_complete_with_exactly_two_executions(
    cluster: tuple[NodeProc, list[NodeProc]],
) -> None:
    requester, _ = cluster
    job_ids = [requester.submit(wasm_job(args=[f"job{n}"], count=2)) for n in range(20)]
    for n, job_id in enumerate(job_ids):
        job = requester.wait_terminal(job_id, 120)
        assert job["State"]["StateType"] == "Completed", job["State"]
        executions = requester.executions(job_id)
        completed = [e for e in executions if e["ComputeState"]["StateType"] == 7]
        assert len(completed) == 2, executions
        assert len({e["NodeID"] for e in completed}) == 2
        for execution in completed:
            assert execution["RunOutput"]["Stdout"] == f"Hello, job{n}!\n"
        running = [e for e in executions if e["ComputeState"]["StateType"] in (5, 10, 11)]
        assert running == []


def test_job_no_node_can_run_fails_with_a_reason(
    cluster: tuple[NodeProc, list[NodeProc]],
) -> None:
    requester, _ = cluster
    job = noop_job()
    job["Constraints"] = [{"Key": "zone", "Operator": "=", "Values": ["mars"]}]
    job_id = requester.submit(job)
    state = requester.wait_terminal(job_id, 30)["State"]
    assert state["StateType"] == "Failed"
    assert "no node could run the job" in state["Message"]
    assert "zone = mars" in state["Message"] or "zone=mars" in state["Message"]

    too_big = noop_job(Resources={"CPU": "64"})
    state = requester.wait_terminal(requester.submit(too_big), 30)["State"]
    assert state["StateType"] == "Failed"
    assert "too large" in state["Message"]
    assert "cpu 64 > 1" in state["Message"]


def test_malformed_message_on_a_node_queue_is_dropped_and_node_keeps_serving(
    broker: Broker, cluster: tuple[NodeProc, list[NodeProc]]
) -> None:
    requester, computes = cluster
    victim = computes[0]
    node_id = NodeIdentity.load_or_create(victim.data_dir).node_id
    token = read_token_file(victim.data_dir.parent)
    assert token is not None
    insider = NodeIdentity.generate()
    codec = signed_codec(insider, token)
    assert codec.signer is not None
    options = BusOptions(peer_secret=token.encode())
    sender = Bus(broker.url_for(9), insider.node_id, lambda envelope: None, codec, options)
    sender.start()
    envelope = {"Sender": insider.node_id, "ID": "m-1", "SentAt": time.time_ns()}
    try:
        sender.publish_raw(b'{"Version": 1, "Type": "AskForBid", "Payload": {}}', node_id)
        for body in (
            b"\x00not json",
            json.dumps({**envelope, "Version": 1, "Type": "AskForBid", "Payload": 7}).encode(),
            json.dumps({**envelope, "ID": "m-2", "Version": 99}).encode(),
        ):  # signed by an admitted node, so they reach the decoder
            sender.publish_raw(codec.signer.frame(body), node_id)
    finally:
        sender.close()
    wait_until(
        lambda: victim.log().count("event=message_dropped") >= 3,
        30,
        message="three dropped messages in the compute log",
    )
    assert "event=message_refused" in victim.log(), "the unsigned one refused before decoding"
    job = noop_job(count=3)
    state = requester.wait_terminal(requester.submit(job), 60)["State"]
    assert state["StateType"] == "Completed"
    assert victim.process.poll() is None


def test_two_requesters_never_over_commit_a_compute_node(
    broker: Broker, cluster: tuple[NodeProc, list[NodeProc]], tmp_path: Path
) -> None:
    first, computes = cluster
    token = read_token_file(first.data_dir.parent)
    assert token is not None
    join = ("--cluster-token", token)
    second = start_node(tmp_path, "requester-2", broker.url_for(5), "requester", *join, api=True)
    try:
        wait_until(lambda: second.compute_count() == 3, 30, message="second requester sees nodes")
        job = noop_job(count=1, sleep_s=0.3, Resources={"CPU": "1"}, Timeouts={"QueueTimeout": 120})
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(req.submit, job) for req in (first, second) for _ in range(6)]
            submitted = [
                (req, f.result())
                for req, f in zip([first] * 6 + [second] * 6, futures, strict=True)
            ]
        for req, job_id in submitted:
            assert req.wait_terminal(job_id, 120)["State"]["StateType"] == "Completed"
    finally:
        second.stop()
    for node in computes:
        runs = runs_of(node.data_dir)
        assert sum(1 for r in runs if r.cpu == 1) >= 1
        peak = peak_cpu(runs)
        assert peak <= 1.0 + 1e-9, f"{node.name} ran {peak} CPUs of jobs at once on 1 CPU"
