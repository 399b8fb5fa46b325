"""The compute node's message handling: a slow bid decision never holds up other messages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from compute.bidding.base import YES, BidDecision, BidRequest
from compute.executors.noop import NoopExecutor
from compute.node import ComputeConfig, ComputeNode
from compute.publishers.noop import NoopPublisher
from compute.registry import Registry
from compute.runner import Plugins
from compute.storage.inline import InlineStorage
from protocol.envelope import Envelope
from protocol.execution import ComputeState, Execution
from protocol.job import Job
from protocol.messages import AskForBid, BidResult, CancelExecution, Message
from protocol.resources import Resources
from protocol.states import ExecutionStateType as S
from tests.support.wait import wait_until


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self._lock = threading.Lock()

    def send(self, node_id: str, message: Message) -> None:
        with self._lock:
            self.sent.append(message)

    def bids(self) -> dict[str, bool]:
        with self._lock:
            return {m.execution_id: m.accepted for m in self.sent if isinstance(m, BidResult)}


class SlowForSomeJobs:
    """A rule that, for jobs named "slow", waits for ``release`` (a stalled storage check)."""

    name = "slow-for-some"

    def __init__(self) -> None:
        self.release = threading.Event()

    def check(self, request: BidRequest) -> BidDecision:
        if request.job.name == "slow":
            self.release.wait(30)
        return YES


def ask(name: str, execution_id: str) -> Envelope:
    job = Job.model_validate(
        {"ID": f"j-{name}", "Name": name, "Tasks": [{"Engine": {"Type": "noop"}}]}
    )
    execution = Execution(
        id=execution_id,
        job_id=job.id,
        node_id="n-compute",
        compute_state=ComputeState(state_type=S.ASK_FOR_BID),
        job=job,
    )
    return Envelope("AskForBid", "m-1", "n-requester", 0, AskForBid(execution=execution))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[ComputeNode, Outbox, SlowForSomeJobs]]:
    outbox, rule = Outbox(), SlowForSomeJobs()
    plugins = Plugins(
        executors=Registry("executor", [NoopExecutor()]),
        storage=Registry("storage source", [InlineStorage()]),
        publishers=Registry("publisher", [NoopPublisher()]),
    )
    config = ComputeConfig(max_capacity=Resources(cpu=4, memory=8 * 1024**3))
    compute = ComputeNode("n-compute", config, plugins, outbox, tmp_path, rules=[rule])
    compute.start()
    yield compute, outbox, rule
    rule.release.set()
    compute.close()


def test_a_stalled_bid_decision_does_not_hold_up_the_next_ask(
    node: tuple[ComputeNode, Outbox, SlowForSomeJobs],
) -> None:
    compute, outbox, rule = node
    handler = threading.Thread(target=compute.handle, args=(ask("slow", "e-slow"),))
    handler.start()
    handler.join(5)
    assert not handler.is_alive(), "handle() blocked on the bid decision"
    compute.handle(ask("fast", "e-fast"))
    wait_until(lambda: "e-fast" in outbox.bids(), 10, message="the fast bid")
    assert "e-slow" not in outbox.bids()
    rule.release.set()
    wait_until(lambda: outbox.bids() == {"e-fast": True, "e-slow": True}, 10, message="both")


class ComesAndGoes(NoopExecutor):
    """An engine whose daemon may be up or down (like docker)."""

    up = False

    @property
    def type(self) -> str:
        return "flaky"

    def is_installed(self) -> bool:
        return self.up


def test_an_engine_that_comes_up_later_is_offered_then(tmp_path: Path) -> None:
    flaky = ComesAndGoes()
    plugins = Plugins(
        executors=Registry("executor", [NoopExecutor(), flaky]),
        storage=Registry("storage source", [InlineStorage()]),
        publishers=Registry("publisher", [NoopPublisher()]),
    )
    config = ComputeConfig(max_capacity=Resources(cpu=1, memory=1024**3), installed_check_s=0)
    compute = ComputeNode("n-compute", config, plugins, Outbox(), tmp_path)

    def engines() -> list[str]:
        info = compute.info().compute_node_info
        assert info is not None
        return info.execution_engines

    assert engines() == ["noop"]
    flaky.up = True
    assert engines() == ["flaky", "noop"]
    compute.close()


def test_an_ask_withdrawn_while_its_bid_is_decided_reserves_nothing(
    node: tuple[ComputeNode, Outbox, SlowForSomeJobs],
) -> None:
    compute, outbox, rule = node
    compute.handle(ask("slow", "e-slow"))
    cancel = CancelExecution(execution_id="e-slow", job_id="j-slow", reason="enough bids")
    compute.handle(Envelope("CancelExecution", "m-2", "n-requester", 0, cancel))
    rule.release.set()
    compute.handle(ask("fast", "e-fast"))
    wait_until(lambda: "e-fast" in outbox.bids(), 10, message="a later bid")
    wait_until(lambda: compute._bidders._work_queue.empty(), 10, message="bid workers idle")
    compute._bidders.shutdown(wait=True)
    assert "e-slow" not in outbox.bids()
    assert compute.holding() == ["e-fast"]
