"""The orchestrator's own checks, driven through its bus handler with an in-memory store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol.envelope import Envelope
from protocol.job import Job
from protocol.messages import (
    AskForBid,
    BidAccepted,
    BidRejected,
    BidResult,
    Message,
    NodeInfoMessage,
)
from protocol.node import ComputeNodeInfo, NodeInfo, NodeType
from protocol.resources import Resources
from protocol.states import ExecutionStateType as S
from requester.orchestrator import REQUESTER_ID_META, Orchestrator
from requester.store import JobStore
from tests.support.jobs import noop_job
from tests.support.recorders import Recorder
from tests.support.wait import wait_until


def envelope(sender: str, payload: Message) -> Envelope:
    return Envelope(
        type=type(payload).__name__, id="m-1", sender=sender, sent_at=1, payload=payload
    )


def compute_info(node_id: str) -> NodeInfo:
    capacity = Resources(cpu=4, memory=8 * 1024**3)
    return NodeInfo(
        node_id=node_id,
        compute_node_info=ComputeNodeInfo(
            execution_engines=["noop"],
            publishers=["noop", "local"],
            storage_sources=["inline"],
            max_capacity=capacity,
            available_capacity=capacity,
        ),
    )


@pytest.fixture
def orchestrator() -> Iterator[tuple[Orchestrator, Recorder]]:
    sent = Recorder()
    with JobStore(":memory:") as store:
        info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        orchestrator = Orchestrator(info, store, sent)
        orchestrator.handle(envelope("n-a", NodeInfoMessage(info=compute_info("n-a"))))
        orchestrator.start()
        try:
            yield orchestrator, sent
        finally:
            orchestrator.close()


def test_submitted_jobs_name_their_requester_in_meta(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    service, _ = orchestrator
    result = service.submit(Job.model_validate(noop_job()))
    assert service.store.get_job(result.job_id).meta[REQUESTER_ID_META] == "n-requester"


def test_only_the_execution_s_own_node_may_answer_for_it(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    service, sent = orchestrator
    job_id = service.submit(Job.model_validate(noop_job())).job_id
    asks = wait_until(lambda: sent.to_whom(AskForBid), 10, message="the ask")
    node_id, ask = asks[0]
    assert isinstance(ask, AskForBid)
    assert node_id == "n-a"
    refusal = BidResult(execution_id=ask.execution.id, job_id=job_id, accepted=False)
    bid = BidResult(execution_id=ask.execution.id, job_id=job_id, accepted=True)

    service.handle(envelope("n-impostor", refusal))
    service.handle(envelope("n-a", bid))  # queued behind the impostor's: handled in order
    accepts = wait_until(lambda: sent.to_whom(BidAccepted), 10, message="the accept")
    assert [node for node, _ in accepts] == ["n-a"]
    executions = service.store.executions(job_id)
    assert [(e.node_id, e.state) for e in executions] == [("n-a", S.BID_ACCEPTED)]


def test_a_repeated_bid_for_a_live_execution_is_ignored_not_rejected(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    """A redelivered BidResult must not make the node drop the run it was given."""
    service, sent = orchestrator
    job_id = service.submit(Job.model_validate(noop_job())).job_id
    _, ask = wait_until(lambda: sent.to_whom(AskForBid), 10, message="the ask")[0]
    assert isinstance(ask, AskForBid)
    bid = BidResult(execution_id=ask.execution.id, job_id=job_id, accepted=True)
    service.handle(envelope("n-a", bid))
    wait_until(lambda: sent.to_whom(BidAccepted), 10, message="the accept")
    service.handle(envelope("n-a", bid))
    # Events are handled in order: once the next job's ask is out, the repeat was handled.
    service.submit(Job.model_validate(noop_job()))
    wait_until(lambda: len(sent.to_whom(AskForBid)) == 2, 10, message="the next job's ask")
    assert sent.to_whom(BidRejected) == []
