"""The compute node's message handling: a slow bid decision never holds up other messages;
capacity is sized and enforced by the node itself; duplicate and late messages leave it right."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from compute.bidding.base import YES, BidDecision, BidRequest
from compute.capacity import CapacityTracker
from compute.config import ComputeConfig
from compute.executors.noop import NoopExecutor
from compute.node import STARTED_HOLD_S, ComputeNode
from compute.publishers.noop import NoopPublisher
from compute.registry import Registry
from compute.runner import Plugins
from compute.storage.inline import InlineStorage
from protocol.envelope import Envelope
from protocol.execution import ComputeState, Execution
from protocol.job import Job
from protocol.messages import (
    AdoptExecution,
    AdoptionRefused,
    AskForBid,
    BidAccepted,
    BidRejected,
    BidResult,
    CancelExecution,
    ComputeError,
    ExecutionStarted,
    Message,
    RunResult,
)
from protocol.outbox import Outbox as BusOutbox
from protocol.resources import Resources
from protocol.states import ExecutionStateType as S
from protocol.wire import STORED
from tests.support.recorders import FakeClock, Recorder
from tests.support.wait import wait_until


class Outbox(Recorder):
    def bids(self) -> dict[str, bool]:
        return {m.execution_id: m.accepted for m in self.sent if isinstance(m, BidResult)}


class SlowForSomeJobs:
    """A rule that, for jobs named "slow", waits for ``release`` (a stalled storage check)."""

    name = "slow-for-some"

    def __init__(self) -> None:
        self.release = threading.Event()

    def may_block(self, job: Job) -> bool:
        return job.name == "slow"

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


def test_an_ask_no_rule_may_block_on_is_decided_on_the_receiving_thread(
    node: tuple[ComputeNode, Outbox, SlowForSomeJobs],
) -> None:
    compute, outbox, _ = node
    compute.handle(ask("fast", "e-fast"))
    assert outbox.bids() == {"e-fast": True}  # no hop to a bid worker: answered already


def test_rules_that_may_block_say_so_for_the_jobs_they_would_block_on() -> None:
    """Probes always may; storage lookups only for a job with inputs (a wasm module may be
    one); the chain asks each rule, and a rule that does not say is taken as pure."""
    from compute.bidding.chain import blocking_rules, default_rules, may_block
    from compute.bidding.probe_exec import ExecProbeRule

    storage = Registry("storage source", [InlineStorage()])
    asked = ask("plain", "e-1").payload
    assert isinstance(asked, AskForBid)
    plain = asked.execution.job
    wasm = Job.model_validate(
        {"ID": "j-w", "Tasks": [{"Engine": {"Type": "wasm", "Params": {"EntryModule": "x"}}}]},
        context=STORED,
    )
    with_input = Job.model_validate(
        {
            "ID": "j-i",
            "Tasks": [
                {
                    "Engine": {"Type": "noop"},
                    "InputSources": [
                        {"Source": {"Type": "inline", "Params": {"URL": "data:,x"}}, "Target": "/i"}
                    ],
                }
            ],
        },
        context=STORED,
    )
    assert plain is not None
    rules = default_rules(storage)
    blocking = blocking_rules(rules)
    assert not may_block(blocking, plain)
    assert may_block(blocking, wasm)
    assert may_block(blocking, with_input)
    assert may_block(blocking_rules([*rules, ExecProbeRule("true", "n-1")]), plain)
    assert not may_block(blocking_rules(default_rules()), with_input)  # no storage lookups


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


# --- capacity, duplicates and late answers: a node that stays right on its own ------------

GI = 1024**3
NODE_MAX = Resources(cpu=4, memory=8 * GI)
TTL_S = 30.0


def make_node(tmp_path: Path, clock: FakeClock | None = None) -> tuple[ComputeNode, Outbox]:
    """A node with the default bid rules and no sweeper thread: tests call
    ``expire_reservations`` themselves, with the clock where they want it."""
    outbox = Outbox()
    plugins = Plugins(
        executors=Registry("executor", [NoopExecutor()]),
        storage=Registry("storage source", [InlineStorage()]),
        publishers=Registry("publisher", [NoopPublisher()]),
    )
    config = ComputeConfig(max_capacity=NODE_MAX, reservation_ttl_s=TTL_S)
    compute = ComputeNode(
        "n-compute", config, plugins, outbox, tmp_path, clock=clock or FakeClock()
    )
    return compute, outbox


def sized_ask(
    execution_id: str,
    task_resources: dict[str, str] | None = None,
    allocated: Resources | None = None,
    sleep_s: float = 0.0,
) -> Envelope:
    task: dict[str, object] = {
        "Engine": {"Type": "noop", "Params": {"SleepSeconds": sleep_s}},
        "Publisher": {"Type": "noop"},
    }
    if task_resources is not None:
        task["Resources"] = task_resources
    # As the requester stored it: a job accepted under older rules travels too.
    job = Job.model_validate({"ID": f"j-{execution_id}", "Tasks": [task]}, context=STORED)
    execution = Execution(
        id=execution_id,
        job_id=job.id,
        node_id="n-compute",
        compute_state=ComputeState(state_type=S.ASK_FOR_BID),
        job=job,
        allocated_resources=(
            {"Tasks": {job.task.name: allocated.to_wire()}} if allocated is not None else {}
        ),
    )
    return Envelope("AskForBid", "m-ask", "n-requester", 0, AskForBid(execution=execution))


def message(payload: Message) -> Envelope:
    return Envelope(type(payload).__name__, "m-x", "n-requester", 0, payload)


def accepted(execution_id: str) -> Envelope:
    return message(BidAccepted(execution_id=execution_id, job_id=f"j-{execution_id}"))


def sent(outbox: Outbox, kind: type[Message], execution_id: str) -> list[Message]:
    return [m for m in outbox.of(kind) if getattr(m, "execution_id", None) == execution_id]


def bid_of(compute: ComputeNode, outbox: Outbox, ask_envelope: Envelope) -> BidResult:
    assert isinstance(ask_envelope.payload, AskForBid)
    execution_id = ask_envelope.payload.execution.id
    compute.handle(ask_envelope)
    wait_until(lambda: sent(outbox, BidResult, execution_id), 10, message="the bid")
    (bid,) = sent(outbox, BidResult, execution_id)
    assert isinstance(bid, BidResult)
    return bid


def test_a_job_too_big_for_the_node_is_refused_without_allocated_resources(
    tmp_path: Path,
) -> None:
    compute, outbox = make_node(tmp_path)
    for index in range(10):
        bid = bid_of(compute, outbox, sized_ask(f"e-big{index}", {"CPU": "64"}))
        assert (bid.accepted, bid.busy) == (False, False)
        assert "cpu 64 > 4" in bid.reason
    assert compute.capacity.snapshot().reserved_count == 0
    assert compute.capacity.available() == NODE_MAX
    compute.close()


def test_a_job_whose_size_is_unreadable_today_is_refused_with_the_reason(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    bid = bid_of(compute, outbox, sized_ask("e-old", {"CPU": "100000"}))
    assert not bid.accepted
    assert bid.reason.startswith("Resources: ")
    assert "100000" in bid.reason
    compute.close()


def test_asks_without_allocated_resources_reserve_what_their_task_asks(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    bids = [bid_of(compute, outbox, sized_ask(f"e-{n}", {"CPU": "1500m"})) for n in range(3)]
    assert [(b.accepted, b.busy) for b in bids] == [(True, False), (True, False), (False, True)]
    assert "cpu 1500m > 1 available" in bids[2].reason
    assert compute.capacity.reserved().cpu == 3.0
    compute.close()


def test_an_allocation_smaller_than_the_task_asks_is_not_trusted(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    small = Resources(cpu=0.5, memory=1024**2)
    bid = bid_of(compute, outbox, sized_ask("e-1", {"CPU": "2", "Memory": "1Gi"}, small))
    assert bid.accepted
    assert compute.capacity.reserved() == Resources(cpu=2, memory=GI)
    compute.handle(accepted("e-1"))
    wait_until(lambda: sent(outbox, RunResult, "e-1"), 10, message="the run's result")
    (line,) = (tmp_path / "activity.jsonl").read_text().splitlines()
    assert (json.loads(line)["cpu"], json.loads(line)["memory"]) == (2.0, GI)
    compute.close()


def test_a_larger_allocation_and_the_node_defaults_both_count(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    assert bid_of(compute, outbox, sized_ask("e-bare")).accepted
    assert compute.capacity.reserved() == ComputeConfig(NODE_MAX).default_job_resources
    bid = bid_of(compute, outbox, sized_ask("e-alloc", {"CPU": "1"}, Resources(cpu=0.5, memory=GI)))
    assert bid.accepted
    assert compute.capacity.reserved() == Resources(cpu=1.1, memory=GI + 64 * 1024**2)
    compute.close()


def test_an_ask_for_another_nodes_execution_is_dropped_unanswered(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    theirs = sized_ask("e-theirs")
    assert isinstance(theirs.payload, AskForBid)
    misplaced = theirs.payload.execution.model_copy(update={"node_id": "n-other"})
    compute.handle(
        message(AskForBid(execution=misplaced, wait_for_approval=False))  # "run it at once"
    )
    assert bid_of(compute, outbox, sized_ask("e-mine")).accepted  # this node's own ask
    compute.close()
    assert sent(outbox, BidResult, "e-theirs") == []
    assert sent(outbox, RunResult, "e-theirs") == []
    assert sent(outbox, ExecutionStarted, "e-theirs") == []


def test_a_duplicate_bid_accepted_is_ignored_and_the_run_completes(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    assert bid_of(compute, outbox, sized_ask("e-dup", sleep_s=0.2)).accepted
    compute.handle(accepted("e-dup"))
    compute.handle(accepted("e-dup"))  # redelivered while it runs
    wait_until(lambda: sent(outbox, RunResult, "e-dup"), 10, message="the run's result")
    compute.handle(accepted("e-dup"))  # redelivered after it ran
    compute.handle(sized_ask("e-dup", sleep_s=0.2))  # and the ask, too
    compute.close()  # waits for every run and bid decision
    assert len(sent(outbox, RunResult, "e-dup")) == 1
    assert sent(outbox, ComputeError, "e-dup") == []
    assert len(sent(outbox, BidResult, "e-dup")) == 1
    assert len((tmp_path / "activity.jsonl").read_text().splitlines()) == 1
    assert compute.capacity.available() == NODE_MAX


def test_an_unanswered_bid_releases_its_reservation_after_the_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    compute, outbox = make_node(tmp_path, clock)
    assert bid_of(compute, outbox, sized_ask("e-orphan", {"CPU": "4"})).accepted
    assert compute.capacity.available().cpu == 0
    clock.advance(TTL_S - 0.5)
    assert compute.expire_reservations() == []
    assert compute.holding() == ["e-orphan"]
    clock.advance(1.0)
    assert compute.capacity.available() == NODE_MAX  # expired, even before the sweep
    assert compute.expire_reservations() == ["e-orphan"]
    assert compute.holding() == []
    assert bid_of(compute, outbox, sized_ask("e-next", {"CPU": "4"})).accepted
    compute.close()


def test_bid_accepted_after_the_ttl_is_refused_even_before_the_sweep(tmp_path: Path) -> None:
    clock = FakeClock()
    compute, outbox = make_node(tmp_path, clock)
    assert bid_of(compute, outbox, sized_ask("e-late", {"CPU": "1"})).accepted
    clock.advance(TTL_S + 0.1)
    compute.handle(accepted("e-late"))
    (error,) = sent(outbox, ComputeError, "e-late")
    assert isinstance(error, ComputeError)
    assert error.retryable
    assert error.job_id == "j-e-late"
    assert "reservation expired" in error.message
    assert compute.holding() == []
    assert compute.expire_reservations() == []
    compute.close()
    assert sent(outbox, ExecutionStarted, "e-late") == []
    assert compute.capacity.snapshot().running_count == 0


def test_bid_accepted_in_time_keeps_running_and_reported_past_the_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    compute, outbox = make_node(tmp_path, clock)
    assert bid_of(compute, outbox, sized_ask("e-run", {"CPU": "1"}, sleep_s=60)).accepted
    compute.handle(accepted("e-run"))
    wait_until(lambda: sent(outbox, ExecutionStarted, "e-run"), 10, message="the run")
    clock.advance(TTL_S + 0.1)
    assert compute.expire_reservations() == []
    assert compute.holding() == ["e-run"]
    assert compute.capacity.snapshot().running_count == 1
    compute.handle(message(CancelExecution(execution_id="e-run", job_id="j-e-run", reason="x")))
    wait_until(lambda: sent(outbox, RunResult, "e-run"), 10, message="the cancelled run")
    assert compute.capacity.available() == NODE_MAX
    assert compute.holding() == ["e-run"]  # its result may still be on its way
    compute.close()


class AcceptDuringExpiry(CapacityTracker):
    """A BidAccepted that lands while the sweeper is inside ``expire()``: handled right there
    when the node's lock is free at that moment, else (the sweep is one locked step) on a
    bus thread that waits for the lock."""

    compute: ComputeNode
    late: threading.Thread | None = None

    def expire(self) -> list[str]:
        expired = super().expire()
        for execution_id in expired:
            if self.compute._lock.acquire(blocking=False):
                self.compute._lock.release()
                self.compute.handle(accepted(execution_id))
            else:
                self.late = threading.Thread(
                    target=self.compute.handle, args=(accepted(execution_id),)
                )
                self.late.start()
        return expired


def test_bid_accepted_racing_the_sweep_is_refused_and_nothing_runs_unreported(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    compute, outbox = make_node(tmp_path, clock)
    tracker = AcceptDuringExpiry(NODE_MAX, clock=clock)
    tracker.compute = compute
    compute.capacity = tracker
    assert bid_of(compute, outbox, sized_ask("e-race", {"CPU": "1"}, sleep_s=60)).accepted
    clock.advance(TTL_S + 0.1)
    compute.expire_reservations()
    if tracker.late is not None:
        tracker.late.join(10)
    snapshot = compute.capacity.snapshot()
    assert (snapshot.running_count, snapshot.reserved_count) == (0, 0)
    assert compute.holding() == []
    (error,) = sent(outbox, ComputeError, "e-race")
    assert isinstance(error, ComputeError)
    assert error.retryable
    compute.close()
    assert sent(outbox, ExecutionStarted, "e-race") == []


def test_a_bid_rejected_for_a_running_execution_stops_it_before_freeing_capacity(
    tmp_path: Path,
) -> None:
    compute, outbox = make_node(tmp_path)
    assert bid_of(compute, outbox, sized_ask("e-1", {"CPU": "4"}, sleep_s=60)).accepted
    compute.handle(accepted("e-1"))
    wait_until(lambda: sent(outbox, ExecutionStarted, "e-1"), 10, message="the run")
    compute.handle(message(BidRejected(execution_id="e-1", job_id="j-e-1", reason="late")))
    wait_until(lambda: sent(outbox, RunResult, "e-1"), 10, message="the stopped run")
    (result,) = sent(outbox, RunResult, "e-1")
    assert isinstance(result, RunResult)
    assert result.run_output.error_msg == "cancelled"
    assert compute.capacity.available() == NODE_MAX
    compute.close()


def direct(ask_envelope: Envelope) -> Envelope:
    """The same ask, placed directly: run it at once, no approval round."""
    assert isinstance(ask_envelope.payload, AskForBid)
    return message(AskForBid(execution=ask_envelope.payload.execution, wait_for_approval=False))


def test_a_direct_ask_it_starts_is_answered_by_execution_started_alone(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    compute.handle(direct(sized_ask("e-now")))
    wait_until(lambda: sent(outbox, RunResult, "e-now"), 10, message="the run's result")
    compute.close()
    assert [type(m) for m in outbox.sent if getattr(m, "execution_id", "") == "e-now"] == [
        ExecutionStarted,
        RunResult,
    ]
    assert compute.capacity.available() == NODE_MAX


def test_a_direct_ask_it_cannot_take_is_answered_by_a_refusing_bid(tmp_path: Path) -> None:
    compute, outbox = make_node(tmp_path)
    refused = bid_of(compute, outbox, direct(sized_ask("e-huge", {"CPU": "64"})))
    assert not refused.accepted
    for index in range(40):  # 0.1 CPU each: 40 fill the node's 4 CPUs
        compute.handle(direct(sized_ask(f"e-fill-{index}", sleep_s=5)))
    wait_until(lambda: len(outbox.of(ExecutionStarted)) == 40, 10, message="40 runs started")
    busy = bid_of(compute, outbox, direct(sized_ask("e-one-too-many")))
    assert not busy.accepted
    assert busy.busy
    assert sent(outbox, ExecutionStarted, "e-one-too-many") == []
    for index in range(40):
        compute.handle(
            message(CancelExecution(execution_id=f"e-fill-{index}", job_id="", reason=""))
        )
    compute.close()


class Published:
    """What a real outbox hands the bus, per destination, in order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    def send_many(self, node_id: str, messages: Sequence[Message]) -> None:
        with self._lock:
            self.messages.extend(messages)

    def of(self, execution_id: str) -> list[str]:
        with self._lock:
            return [
                type(m).__name__
                for m in self.messages
                if getattr(m, "execution_id", None) == execution_id
            ]


def direct_ask(execution_id: str, sleep_s: float) -> Envelope:
    asked = sized_ask(execution_id, sleep_s=sleep_s).payload
    assert isinstance(asked, AskForBid)
    return message(AskForBid(execution=asked.execution, wait_for_approval=False))


def test_a_short_run_on_a_direct_ask_reports_only_its_result(tmp_path: Path) -> None:
    published = Published()
    outbox = BusOutbox(published, name="outbox-direct")
    plugins = Plugins(
        executors=Registry("executor", [NoopExecutor()]),
        storage=Registry("storage source", [InlineStorage()]),
        publishers=Registry("publisher", [NoopPublisher()]),
    )
    config = ComputeConfig(max_capacity=NODE_MAX)
    compute = ComputeNode("n-compute", config, plugins, outbox, tmp_path)
    try:
        compute.handle(direct_ask("e-short", sleep_s=0))
        wait_until(lambda: "RunResult" in published.of("e-short"), 10, message="the result")
        # the long run outlasts the hold: its start is told while it runs, then its end
        compute.handle(direct_ask("e-long", sleep_s=STARTED_HOLD_S * 10))
        wait_until(lambda: published.of("e-long") == ["ExecutionStarted"], 10, message="start")
        wait_until(lambda: "RunResult" in published.of("e-long"), 10, message="the long result")
    finally:
        compute.close()
        outbox.close()
    assert published.of("e-short") == ["RunResult"]
    assert published.of("e-long") == ["ExecutionStarted", "RunResult"]


def from_taker(payload: Message) -> Envelope:
    """A message from the requester that took the job over from n-requester."""
    return Envelope(type(payload).__name__, "m-t", "n-taker", 0, payload)


def to_taker(outbox: Outbox, kind: type[Message], execution_id: str) -> list[Message]:
    return [
        m
        for node_id, m in outbox.addressed
        if node_id == "n-taker"
        and isinstance(m, kind)
        and getattr(m, "execution_id", None) == execution_id
    ]


def test_a_run_adopted_by_the_requester_that_took_its_job_over_answers_that_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compute, outbox = make_node(tmp_path)
    assert bid_of(compute, outbox, sized_ask("e-1", sleep_s=60)).accepted
    compute.handle(accepted("e-1"))
    wait_until(lambda: sent(outbox, ExecutionStarted, "e-1"), 10, message="the run")
    compute.handle(from_taker(AdoptExecution(execution_id="e-1", job_id="j-e-1")))
    assert len(to_taker(outbox, ExecutionStarted, "e-1")) == 1  # where it stands: running
    source = compute.log_source("e-1")
    assert source is not None
    assert source.requester == "n-taker"  # its logs too
    # the requester that asked has no say any more; the one that took it over has
    with caplog.at_level(logging.WARNING, logger="bacalao.compute"):
        compute.handle(message(CancelExecution(execution_id="e-1", job_id="j-e-1", reason="")))
    assert "event=message_from_wrong_node what='a cancel' execution=e-1" in caplog.text
    assert sent(outbox, RunResult, "e-1") == []
    compute.handle(from_taker(CancelExecution(execution_id="e-1", job_id="j-e-1", reason="")))
    wait_until(lambda: to_taker(outbox, RunResult, "e-1"), 10, message="the result, to it")
    assert len(sent(outbox, RunResult, "e-1")) == 1
    compute.close()


def test_a_finished_run_adopted_is_told_again_and_one_not_run_here_is_refused(
    tmp_path: Path,
) -> None:
    compute, outbox = make_node(tmp_path)
    compute.handle(direct(sized_ask("e-done")))
    wait_until(lambda: sent(outbox, RunResult, "e-done"), 10, message="the run's result")
    compute.handle(from_taker(AdoptExecution(execution_id="e-done", job_id="j-e-done")))
    [told] = to_taker(outbox, RunResult, "e-done")
    assert told == sent(outbox, RunResult, "e-done")[0]
    assert bid_of(compute, outbox, sized_ask("e-bid")).accepted  # reserved, never accepted
    for execution_id in ("e-bid", "e-unknown"):
        compute.handle(from_taker(AdoptExecution(execution_id=execution_id, job_id="j")))
        [refusal] = to_taker(outbox, AdoptionRefused, execution_id)
        assert isinstance(refusal, AdoptionRefused)
        assert f"does not run execution {execution_id}" in refusal.reason
    # the refused bid let its room go, and the ask not seen yet will not run when it comes
    assert compute.log_source("e-bid") is None
    assert compute.capacity.available() == NODE_MAX
    late = sized_ask("e-unknown")
    compute.handle(direct(late))
    assert sent(outbox, ExecutionStarted, "e-unknown") == []
    assert sent(outbox, BidResult, "e-unknown") == []
    compute.close()
