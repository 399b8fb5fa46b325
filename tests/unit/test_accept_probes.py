"""Bid accept probes: real programs and a real local HTTP service veto bids, off the
orchestrator's thread; the orchestrator asks for approval, rejects a vetoed bid with the
probe's reason, and asks another node."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from protocol.execution import ComputeState, Execution
from protocol.job import Job, JobStateType
from protocol.messages import AskForBid, BidAccepted, BidRejected, BidResult, NodeInfoMessage
from protocol.node import NodeInfo, NodeType
from protocol.probes import ExecProbe, HTTPProbe, Probe
from protocol.resources import Resources
from protocol.states import ExecutionStateType as S
from requester.accept_probes import (
    ANSWER_KEY,
    PROBE_DATA_ENV,
    WHAT,
    AcceptProbeConfig,
    AcceptProbes,
    probes_of,
)
from requester.orchestrator import Orchestrator, RequesterConfig
from requester.plan import Plan
from requester.store import JobStore
from tests.support.jobs import noop_job
from tests.support.recorders import Recorder
from tests.support.wait import wait_until
from tests.unit.test_orchestrator import compute_info, envelope

# Vetoes node n-a (the payload is JSON with ", " and ": " separators), accepts the others.
VETO_A = (
    "grep -q '\"NodeID\": \"n-a\"' && { echo 'n-a is not trusted' >&2; exit 1; }; "
    f'test -n "${PROBE_DATA_ENV}"'
)


def exec_probe(command: str, timeout_s: float = 10.0) -> ExecProbe:
    return ExecProbe(command, WHAT, PROBE_DATA_ENV, timeout_s)


def job() -> Job:
    return Job.model_validate({**noop_job(), "ID": "j-probed"})


def bid(node_id: str) -> Execution:
    """A positive bid of ``node_id``, waiting for approval."""
    return Execution(
        id=f"e-{node_id}",
        job_id="j-probed",
        node_id=node_id,
        compute_state=ComputeState(state_type=S.ASK_FOR_BID_ACCEPTED),
    )


class Reviews:
    """AcceptProbes over ``probes``, with the jobs it woke."""

    def __init__(self, probes: list[Probe]) -> None:
        self.woken: list[str] = []
        self.probes = AcceptProbes(probes, self.woken.append)

    def review(self, executions: list[Execution]) -> Plan:
        plan = Plan(job_id="j-probed", accept=[e.id for e in executions])
        plan.job_state = JobStateType.RUNNING
        nodes = [NodeInfo(node_id=e.node_id) for e in executions]
        self.probes.review(job(), plan, executions, nodes)
        return plan


@pytest.fixture
def reviews() -> Iterator[Reviews]:
    made = Reviews([exec_probe(VETO_A)])
    try:
        yield made
    finally:
        made.probes.close()


def test_a_bid_waits_for_the_probes_then_is_accepted_or_vetoed(reviews: Reviews) -> None:
    bids = [bid("n-a"), bid("n-b")]
    first = reviews.review(bids)
    assert first.accept == []
    assert first.reject == []
    assert first.job_state is None  # nothing runs yet: the job is not Running
    wait_until(lambda: sorted(reviews.woken) == ["j-probed", "j-probed"], 10, message="answers")

    second = reviews.review(bids)
    assert second.accept == ["e-n-b"]
    assert second.job_state == JobStateType.RUNNING
    [(rejected, why)] = second.reject
    assert rejected == "e-n-a"
    assert why.startswith("bid vetoed: bid accept probe `grep")
    assert why.endswith("said no: n-a is not trusted")
    assert reviews.probes.vetoes("j-probed") == {"n-a": why.removeprefix("bid vetoed: ")}
    assert reviews.probes.vetoes("j-other") == {}
    assert reviews.probes.asked == 2  # the answers were kept: nobody was asked twice


def test_a_probe_that_does_not_finish_in_time_vetoes() -> None:
    made = Reviews([exec_probe("sleep 30", timeout_s=0.3)])
    try:
        made.review([bid("n-b")])
        wait_until(lambda: made.woken, 10, message="the answer")
        [(_, why)] = made.review([bid("n-b")]).reject
        assert "did not finish within 0.3s (killed)" in why
    finally:
        made.probes.close()


class Hook(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.seen.append(payload)
        answer = payload["NodeID"] != "n-a"
        body = json.dumps({"accept": answer, "reason": "" if answer else "n-a is draining"})
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def hook_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hook.seen.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bids"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_probe_sees_the_job_and_the_bidder_and_answers_accept(hook_url: str) -> None:
    made = Reviews([HTTPProbe(hook_url, WHAT, ANSWER_KEY)])
    try:
        made.review([bid("n-a"), bid("n-b")])
        wait_until(lambda: len(made.woken) == 2, 10, message="answers")
        plan = made.review([bid("n-a"), bid("n-b")])
    finally:
        made.probes.close()
    assert plan.accept == ["e-n-b"]
    assert plan.reject == [("e-n-a", f"bid vetoed: bid accept probe {hook_url} said no: "
                                     "n-a is draining")]  # fmt: skip
    seen = {payload["NodeID"]: payload for payload in Hook.seen}
    assert seen["n-b"]["Job"]["ID"] == "j-probed"
    assert seen["n-b"]["Node"]["NodeID"] == "n-b"


def test_probes_of_a_config() -> None:
    assert probes_of(AcceptProbeConfig()) == []
    both = probes_of(AcceptProbeConfig(http="http://127.0.0.1:9/x", exec="true", timeout_s=2))
    assert [type(p) for p in both] == [HTTPProbe, ExecProbe]
    for probe in both:
        probe.close()


def test_the_orchestrator_asks_for_approval_and_asks_another_node_after_a_veto() -> None:
    sent = Recorder()
    with JobStore(":memory:") as store:
        info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        service = Orchestrator(
            info, store, sent, RequesterConfig(settle_s=0), accept_probes=[exec_probe(VETO_A)]
        )
        service.handle(envelope("n-a", NodeInfoMessage(info=compute_info("n-a"))))
        # n-b has far less room free: n-a ranks first, so it is asked first
        small = compute_info("n-b")
        assert small.compute_node_info is not None
        little = Resources(cpu=2, memory=4 * 1024**3)
        small.compute_node_info.available_capacity = little
        service.handle(envelope("n-b", NodeInfoMessage(info=small)))
        service.start()
        try:
            job_id = service.submit(Job.model_validate(noop_job())).job_id
            answered: set[str] = set()

            def bid_on_every_ask() -> bool:
                for node_id, ask in sent.to_whom(AskForBid):
                    assert isinstance(ask, AskForBid)
                    assert ask.wait_for_approval, "with accept probes every bid is approved"
                    if ask.execution.id not in answered:
                        answered.add(ask.execution.id)
                        result = BidResult(
                            execution_id=ask.execution.id, job_id=job_id, accepted=True
                        )
                        service.handle(envelope(node_id, result))
                return bool(sent.to_whom(BidAccepted))

            wait_until(bid_on_every_ask, 20, message="a bid accepted")
            assert [node for node, _ in sent.to_whom(BidAccepted)] == ["n-b"]
            assert [node for node, _ in sent.to_whom(AskForBid)] == ["n-a", "n-b"]
            [(node, vetoed)] = sent.to_whom(BidRejected)
            assert node == "n-a"
            assert isinstance(vetoed, BidRejected)
            assert vetoed.reason.endswith("said no: n-a is not trusted")
            states = {e.node_id: e.state for e in store.executions(job_id)}
            assert states == {"n-a": S.BID_REJECTED, "n-b": S.BID_ACCEPTED}
        finally:
            service.close()
