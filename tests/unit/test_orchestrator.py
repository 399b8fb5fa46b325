"""The orchestrator's own checks, driven through its bus handler with an in-memory store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from protocol.bookkeeping import Queueing, Verdict
from protocol.envelope import Envelope
from protocol.execution import ComputeState, DesiredState, Execution, RunCommandResult
from protocol.job import Job, JobStateType
from protocol.messages import (
    AdoptExecution,
    AdoptionRefused,
    AskForBid,
    BidAccepted,
    BidRejected,
    BidResult,
    CancelExecution,
    ExecutionStarted,
    Message,
    NodeInfoMessage,
    RunResult,
    ShutdownNotice,
)
from protocol.node import ComputeNodeInfo, NodeInfo, NodeType
from protocol.resources import Resources
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from requester.events import RoomNews
from requester.orchestrator import ADOPT_TRIES, REQUESTER_ID_META, Orchestrator, RequesterConfig
from requester.plan import Plan, SchedulerConfig
from requester.planner import Planner
from requester.replies import MAX_REFUSAL_LABELS, refusal_label
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


@contextmanager
def running(config: RequesterConfig) -> Iterator[tuple[Orchestrator, Recorder]]:
    """An orchestrator that knows compute node n-a, sending into a Recorder."""
    sent = Recorder()
    with JobStore(":memory:") as store:
        info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        orchestrator = Orchestrator(info, store, sent, config)
        orchestrator.handle(envelope("n-a", NodeInfoMessage(info=compute_info("n-a"))))
        orchestrator.start()
        try:
            yield orchestrator, sent
        finally:
            orchestrator.close()


@pytest.fixture
def orchestrator() -> Iterator[tuple[Orchestrator, Recorder]]:
    with running(RequesterConfig(settle_s=0)) as started:
        yield started


@pytest.fixture(params=[1, 2], ids=["direct", "with-approval"])
def either_way(request: pytest.FixtureRequest) -> Iterator[tuple[Orchestrator, Recorder]]:
    """Placed directly (over-ask 1: a positive bid has started the run) or asked with an
    approval round (over-ask 2: the requester accepts the bid)."""
    scheduler = SchedulerConfig(over_ask=request.param)
    with running(RequesterConfig(scheduler=scheduler, settle_s=0)) as started:
        yield started


def bid_taken(service: Orchestrator, sent: Recorder, execution_id: str) -> None:
    """Wait until a positive bid for ``execution_id`` was taken: accepted, or (placed
    directly) its execution recorded as started."""
    asks = [m for _, m in sent.to_whom(AskForBid) if isinstance(m, AskForBid)]
    ask = next(m for m in asks if m.execution.id == execution_id)
    if ask.wait_for_approval:
        wait_until(lambda: sent.to_whom(BidAccepted), 10, message="the accept")
    else:
        state = lambda: service.store.get_execution(execution_id).state  # noqa: E731
        wait_until(lambda: state() == S.BID_ACCEPTED, 10, message="the bid recorded")


def submitted(service: Orchestrator, sent: Recorder) -> tuple[str, str, AskForBid]:
    """Submit a noop job and wait for its first ask: (job ID, the node asked, the ask)."""
    job_id = service.submit(Job.model_validate(noop_job())).job_id
    node_id, ask = wait_until(lambda: sent.to_whom(AskForBid), 10, message="the ask")[0]
    assert isinstance(ask, AskForBid)
    return job_id, node_id, ask


def test_submitted_jobs_name_their_requester_in_meta(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    service, _ = orchestrator
    result = service.submit(Job.model_validate(noop_job()))
    assert service.store.get_job(result.job_id).meta[REQUESTER_ID_META] == "n-requester"


def test_only_the_execution_s_own_node_may_answer_for_it(
    either_way: tuple[Orchestrator, Recorder],
) -> None:
    service, sent = either_way
    job_id = service.submit(Job.model_validate(noop_job())).job_id
    asks = wait_until(lambda: sent.to_whom(AskForBid), 10, message="the ask")
    node_id, ask = asks[0]
    assert isinstance(ask, AskForBid)
    assert node_id == "n-a"
    refusal = BidResult(execution_id=ask.execution.id, job_id=job_id, accepted=False)
    bid = BidResult(execution_id=ask.execution.id, job_id=job_id, accepted=True)

    service.handle(envelope("n-impostor", refusal))
    service.handle(envelope("n-a", bid))  # queued behind the impostor's: handled in order
    bid_taken(service, sent, ask.execution.id)
    assert [node for node, _ in sent.to_whom(BidAccepted)] == (
        ["n-a"] if ask.wait_for_approval else []
    )
    executions = service.store.executions(job_id)
    assert [(e.node_id, e.state) for e in executions] == [("n-a", S.BID_ACCEPTED)]


def test_a_repeated_bid_for_a_live_execution_is_ignored_not_rejected(
    either_way: tuple[Orchestrator, Recorder],
) -> None:
    """A redelivered BidResult must not make the node drop the run it was given."""
    service, sent = either_way
    job_id, _, ask = submitted(service, sent)
    bid = BidResult(execution_id=ask.execution.id, job_id=job_id, accepted=True)
    service.handle(envelope("n-a", bid))
    bid_taken(service, sent, ask.execution.id)
    service.handle(envelope("n-a", bid))
    # Events are handled in order: once the next job's ask is out, the repeat was handled.
    service.submit(Job.model_validate(noop_job()))
    wait_until(lambda: len(sent.to_whom(AskForBid)) == 2, 10, message="the next job's ask")
    assert sent.to_whom(BidRejected) == []


def accepted_on_a(service: Orchestrator, sent: Recorder) -> str:
    job_id, _, ask = submitted(service, sent)
    bid = BidResult(execution_id=ask.execution.id, job_id=job_id, accepted=True)
    service.handle(envelope("n-a", bid))
    bid_taken(service, sent, ask.execution.id)
    return ask.execution.id


def test_a_node_saying_goodbye_gets_its_executions_looked_at() -> None:
    """Nothing else would wake the job: no bid is due (the bid deadline is far off here), and
    a node gone with a goodbye is neither swept nor audited."""
    config = RequesterConfig(scheduler=SchedulerConfig(bid_timeout_s=3600), settle_s=0)
    with running(config) as (service, sent):
        execution_id = accepted_on_a(service, sent)
        service.handle(envelope("n-a", ShutdownNotice(node_id="n-a", reason="bye")))

        def failed() -> bool:
            return service.store.get_execution(execution_id).state == S.FAILED

        wait_until(failed, 10, message="the execution on the departed node to fail")
        message = service.store.get_execution(execution_id).compute_state.message
    assert "disconnected" in message


def test_asks_lost_in_a_node_restart_are_not_counted_as_attempts(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    service, sent = orchestrator
    service.submit(Job.model_validate(noop_job()))
    _, ask = wait_until(lambda: sent.to_whom(AskForBid), 10, message="the ask")[0]
    assert isinstance(ask, AskForBid)
    restarted = compute_info("n-a").model_copy(update={"boot_id": "another-boot"})
    service.handle(envelope("n-a", NodeInfoMessage(info=restarted)))

    def forgotten() -> bool:
        return service.store.get_execution(ask.execution.id).state == S.FAILED

    wait_until(forgotten, 10, message="the ask to be forgotten")
    forgotten_ask = service.store.get_execution(ask.execution.id)
    assert forgotten_ask.verdict == Verdict(retryable=True, never_ran=True)
    assert forgotten_ask.compute_state.details == {}  # bookkeeping stays off the public state


def test_a_queued_job_s_message_follows_the_latest_reasons() -> None:
    with JobStore(":memory:") as store:
        job = store.create_job(Job.model_validate({**noop_job(), "ID": "j-queued"}), "v-1")
        queueing = Queueing(since_ns=1, round_ns=2)
        job = store.update_job_state(job.id, JobStateType.QUEUED, "a: busy", queueing)
        plan = Plan(
            job_id=job.id,
            job_state=JobStateType.QUEUED,
            job_message="a: busy; b: not enough disk",
            queueing=queueing,
        )
        Planner(store, Recorder()).apply(plan, job, Resources())
        assert store.get_job(job.id).state.message == "a: busy; b: not enough disk"


def test_a_full_node_is_not_asked_and_each_result_lets_one_queued_job_in() -> None:
    """Room for two jobs of 0.1 CPU: five submissions get two asks; the rest wait, Queued,
    in arrival order, and every result that comes back lets exactly the next one in."""
    capacity = Resources(cpu=0.2, memory=8 * 1024**3)
    info = compute_info("n-a")
    assert info.compute_node_info is not None
    info.compute_node_info.max_capacity = capacity
    info.compute_node_info.available_capacity = capacity
    sent = Recorder()
    with JobStore(":memory:") as store:
        requester = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        service = Orchestrator(requester, store, sent, RequesterConfig(settle_s=0))
        service.handle(envelope("n-a", NodeInfoMessage(info=info, using=[])))
        service.start()
        try:
            job_ids = [service.submit(Job.model_validate(noop_job())).job_id for _ in range(5)]

            def asks() -> list[AskForBid]:
                return [m for _, m in sent.to_whom(AskForBid) if isinstance(m, AskForBid)]

            def queued() -> list[str]:
                return [
                    job_id
                    for job_id in job_ids
                    if store.get_job(job_id).state.state_type == JobStateType.QUEUED
                ]

            wait_until(lambda: len(queued()) == 3, 10, message="three jobs queued for room")
            assert [ask.execution.job_id for ask in asks()] == job_ids[:2]
            assert all(not ask.wait_for_approval for ask in asks())
            assert "waiting for room" in store.get_job(job_ids[2]).state.message

            for done in range(3):
                first = asks()[done]
                ran = RunResult(
                    execution_id=first.execution.id,
                    job_id=first.execution.job_id,
                    run_output=RunCommandResult(stdout="ok\n"),
                )
                service.handle(envelope("n-a", BidResult(
                    execution_id=first.execution.id, job_id=first.execution.job_id, accepted=True
                )))  # fmt: skip
                service.handle(envelope("n-a", ran))
                want = 3 + done
                wait_until(lambda: len(asks()) >= want, 10, message="the next job's ask")  # noqa: B023
                assert [ask.execution.job_id for ask in asks()] == job_ids[:want]
        finally:
            service.close()


def test_execution_started_answers_a_direct_ask_and_runs_the_job(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    service, sent = orchestrator
    job_id, node_id, ask = submitted(service, sent)
    assert not ask.wait_for_approval
    started = ExecutionStarted(execution_id=ask.execution.id, job_id=job_id)
    service.handle(envelope(node_id, started))
    store = service.store
    wait_until(
        lambda: store.get_job(job_id).state.state_type == JobStateType.RUNNING,
        10,
        message="the job running",
    )
    assert store.get_execution(ask.execution.id).state == S.RUNNING
    done = RunResult(
        execution_id=ask.execution.id, job_id=job_id, run_output=RunCommandResult(stdout="ok")
    )
    service.handle(envelope(node_id, done))
    wait_until(
        lambda: store.get_job(job_id).state.state_type == JobStateType.COMPLETED,
        10,
        message="the job completed",
    )
    assert sent.to_whom(BidAccepted) == []


def test_a_run_result_alone_answers_a_direct_ask_its_start_recorded_first(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    """A short run's ExecutionStarted is dropped by the compute node as redundant: the
    RunResult says the run started, and the history still shows it running."""
    service, sent = orchestrator
    job_id, node_id, ask = submitted(service, sent)
    done = RunResult(
        execution_id=ask.execution.id, job_id=job_id, run_output=RunCommandResult(stdout="ok")
    )
    service.handle(envelope(node_id, done))
    store = service.store
    wait_until(
        lambda: store.get_job(job_id).state.state_type == JobStateType.COMPLETED,
        10,
        message="the job completed",
    )
    changes = [
        (entry.execution_state.previous, entry.execution_state.new)
        for entry in store.history(job_id, event_type="executions")
        if entry.execution_state is not None
    ]
    assert changes[-2:] == [(S.ASK_FOR_BID, S.RUNNING), (S.RUNNING, S.COMPLETED)]
    job_changes = [
        (entry.job_state.previous, entry.job_state.new)
        for entry in store.history(job_id, event_type="jobs")
        if entry.job_state is not None
    ]
    assert job_changes[-2:] == [
        (JobStateType.PENDING, JobStateType.RUNNING),
        (JobStateType.RUNNING, JobStateType.COMPLETED),
    ]
    output = store.get_execution(ask.execution.id).run_output
    assert output is not None
    assert output.stdout == "ok"


def test_a_run_result_from_another_node_than_the_asked_one_is_ignored(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    service, sent = orchestrator
    job_id, node_id, ask = submitted(service, sent)
    forged = RunResult(
        execution_id=ask.execution.id, job_id=job_id, run_output=RunCommandResult(stdout="x")
    )
    service.handle(envelope("n-somebody-else", forged))
    service.handle(
        envelope(node_id, ExecutionStarted(execution_id=ask.execution.id, job_id=job_id))
    )
    wait_until(
        lambda: service.store.get_execution(ask.execution.id).state == S.RUNNING,
        10,
        message="the execution running",
    )
    assert service.store.get_job(job_id).state.state_type == JobStateType.RUNNING


def test_a_run_started_for_an_execution_that_ended_here_is_cancelled_there(
    orchestrator: tuple[Orchestrator, Recorder],
) -> None:
    service, sent = orchestrator
    job_id, node_id, ask = submitted(service, sent)
    service.stop(job_id, "changed my mind")
    wait_until(
        lambda: service.store.get_execution(ask.execution.id).state.terminal,
        10,
        message="the execution cancelled",
    )
    before = len(sent.to_whom(CancelExecution))
    service.handle(
        envelope(node_id, ExecutionStarted(execution_id=ask.execution.id, job_id=job_id))
    )
    cancels = wait_until(
        lambda: sent.to_whom(CancelExecution)[before:], 10, message="the cancel of the late run"
    )
    assert [(to, m.execution_id) for to, m in cancels if isinstance(m, CancelExecution)] == [
        (node_id, ask.execution.id)
    ]
    assert service.store.get_execution(ask.execution.id).state == S.CANCELLED


def test_refusals_are_counted_under_a_bounded_set_of_names() -> None:
    seen: Counter[str] = Counter()
    assert refusal_label("network", seen) == "network"
    assert refusal_label("", seen) == "unknown"  # a node from before RefusedBy
    assert refusal_label("Robert'); DROP", seen) == "other"
    assert refusal_label("x" * 200, seen) == "other"
    for index in range(MAX_REFUSAL_LABELS):
        seen[f"rule {index}"] += 1
    assert refusal_label("rule 3", seen) == "rule 3"  # known names keep counting
    assert refusal_label("one more", seen) == "other"  # no new names past the bound


def test_an_idle_node_repeating_its_announcement_wakes_no_pass() -> None:
    with JobStore(":memory:") as store:
        info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        service = Orchestrator(info, store, Recorder(), RequesterConfig(settle_s=0))

        def announce(seq: int, cpu: float) -> list[object]:
            node = compute_info("n-a")
            assert node.compute_node_info is not None
            news = node.compute_node_info.model_copy(
                update={"available_capacity": Resources(cpu=cpu, memory=8 * 1024**3)}
            )
            node = node.model_copy(update={"seq": seq, "compute_node_info": news})
            service.handle(envelope("n-a", NodeInfoMessage(info=node, using=[])))
            queued = list(service._events.queue)
            service._events.queue.clear()
            return queued

        assert [type(e) for e in announce(1, 4)] == [RoomNews]  # joined
        assert announce(2, 4) == []  # the same again: nothing for a pass to do
        assert announce(3, 4) == []
        assert [type(e) for e in announce(4, 2)] == [RoomNews]  # its room changed


def test_on_a_shared_store_a_requester_acts_only_on_the_jobs_it_leases(tmp_path: Path) -> None:
    """Every requester on a shared store reads every job, but a job another requester
    leases is that one's to schedule: a requester starting up does not resume it."""
    path = str(tmp_path / "jobs.db")
    with JobStore(path, lease_owner="n-other") as theirs:
        theirs_to_run = Job.model_validate(noop_job())
        theirs_to_run.id = "j-theirs"
        their_job = theirs.create_job(theirs_to_run, "ev-1").id
        sent = Recorder()
        with JobStore(path, lease_owner="n-requester") as store:
            info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
            service = Orchestrator(info, store, sent, RequesterConfig(settle_s=0))
            service.handle(envelope("n-a", NodeInfoMessage(info=compute_info("n-a"))))
            service.start()  # resumes what it finds: their job was there before
            try:
                first = service.submit(Job.model_validate(noop_job())).job_id
                second = service.submit(Job.model_validate(noop_job())).job_id

                def asked() -> set[str]:
                    asks = sent.to_whom(AskForBid)
                    return {m.execution.job_id for _, m in asks if isinstance(m, AskForBid)}

                wait_until(lambda: {first, second} <= asked(), 10, message="both asks")
            finally:
                service.close()
        assert asked() == {first, second}
        assert theirs.executions(their_job) == []
        assert theirs.leases.owner(their_job) == "n-other"


@contextmanager
def taken_over(
    tmp_path: Path, orphan_state: S, config: RequesterConfig | None = None
) -> Iterator[tuple[Orchestrator, Recorder, str]]:
    """A job another requester ("n-gone") asked n-a for, its execution left in
    ``orphan_state``, and its lease lapsed: taken over by a started orchestrator."""
    path = str(tmp_path / "jobs.db")
    with JobStore(path, lease_owner="n-gone") as theirs:
        orphaned_job = Job.model_validate(noop_job())
        orphaned_job.id = "j-orphaned"
        job_id = theirs.create_job(orphaned_job, "ev-1").id
        theirs.create_execution(
            Execution(
                id="e-orphan",
                job_id=job_id,
                node_id="n-a",
                compute_state=ComputeState(state_type=S.ASK_FOR_BID),
                desired_state=DesiredState(state_type=D.RUNNING),
            )
        )
        if orphan_state != S.ASK_FOR_BID:
            theirs.update_execution("e-orphan", state=orphan_state, expect=(S.ASK_FOR_BID,))
        theirs.leases.release("n-gone", [job_id])  # as good as lapsed
    sent = Recorder()
    with JobStore(path, lease_owner="n-requester") as store:
        info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        service = Orchestrator(info, store, sent, config or RequesterConfig(settle_s=0))
        service.handle(envelope("n-a", NodeInfoMessage(info=compute_info("n-a"))))
        service.start()
        try:  # as the lease keeper does: claim, then hand over
            assert store.leases.claim("n-requester", [job_id], ttl_s=60) == [job_id]
            service.take_over([job_id])
            yield service, sent, job_id
        finally:
            service.close()


def asked_again_instead_of_the_orphan(service: Orchestrator, sent: Recorder, why: str) -> None:
    """n-a is asked again under a new execution; the orphan is cancelled, saying ``why``,
    and not held against n-a (not the node's doing)."""
    [(node_id, ask)] = wait_until(
        lambda: sent.to_whom(AskForBid), 10, message="the job asked again"
    )
    assert node_id == "n-a"
    assert isinstance(ask, AskForBid)
    assert ask.execution.id != "e-orphan"
    cancelled = service.store.get_execution("e-orphan")
    assert cancelled.state == S.CANCELLED
    assert why in cancelled.compute_state.message
    assert service.reputations.get("n-a") is None


def test_a_job_taken_over_has_its_undecided_asks_cancelled_and_is_asked_again(
    tmp_path: Path,
) -> None:
    """n-a bid for the other requester's ask and waits for that one's accept, which will
    not come: the execution is cancelled here (not counted against n-a) and n-a asked again."""
    with taken_over(tmp_path, S.ASK_FOR_BID_ACCEPTED) as (service, sent, _):
        asked_again_instead_of_the_orphan(service, sent, "n-requester took it over")
        assert sent.to_whom(AdoptExecution) == []


def test_a_job_taken_over_has_its_running_execution_adopted_not_run_again(
    tmp_path: Path,
) -> None:
    """n-a runs the other requester's execution: it is told to answer here, and its result
    completes the job, which is asked of nobody again."""
    with taken_over(tmp_path, S.RUNNING) as (service, sent, job_id):
        [(node_id, adopt)] = wait_until(
            lambda: sent.to_whom(AdoptExecution), 10, message="the execution adopted"
        )
        assert (node_id, adopt) == ("n-a", AdoptExecution(execution_id="e-orphan", job_id=job_id))
        running = service.store.get_execution("e-orphan")
        assert running.state == S.RUNNING
        assert "n-requester took the job over" in running.compute_state.message
        output = RunCommandResult(stdout="ok\n", exit_code=0)
        service.handle(
            envelope("n-a", RunResult(execution_id="e-orphan", job_id=job_id, run_output=output))
        )
        done = wait_until(
            lambda: service.store.get_job(job_id).state.state_type == JobStateType.COMPLETED,
            10,
            message="the job completed",
        )
        assert done
        assert sent.to_whom(AskForBid) == []
        assert [e.id for e in service.store.executions(job_id)] == ["e-orphan"]


def test_an_adoption_its_node_does_not_answer_is_sent_again_until_it_does(
    tmp_path: Path,
) -> None:
    """The bus only promises its timeouts: an AdoptExecution may be lost. Unanswered, it is
    sent again each audit interval; once the node answers, no more."""
    config = RequesterConfig(settle_s=0, audit_s=0.05)
    with taken_over(tmp_path, S.RUNNING, config) as (service, sent, job_id):
        wait_until(lambda: len(sent.to_whom(AdoptExecution)) >= 3, 10, message="the adoption again")
        answer = ExecutionStarted(execution_id="e-orphan", job_id=job_id)
        service.handle(envelope("n-a", answer))
        wait_until(lambda: service.debug()["Orchestrator"]["Adopting"] == 0, 10, message="it heard")
        told = len(sent.to_whom(AdoptExecution))
        # a pass after the answer, and audits past it: nothing more is sent
        passes = service.debug()["Orchestrator"]["Passes"]
        wait_until(
            lambda: service.debug()["Orchestrator"]["Passes"] > passes + 3, 10, message="passes"
        )
        assert len(sent.to_whom(AdoptExecution)) == told <= ADOPT_TRIES
        assert service.store.get_execution("e-orphan").state == S.RUNNING


def test_an_adopted_execution_its_node_does_not_run_is_asked_again(tmp_path: Path) -> None:
    """Not held against the node (it never had the execution) nor counted as an attempt."""
    with taken_over(tmp_path, S.RUNNING) as (service, sent, job_id):
        wait_until(lambda: sent.to_whom(AdoptExecution), 10, message="the execution adopted")
        refusal = AdoptionRefused(
            execution_id="e-orphan", job_id=job_id, reason="node n-a does not run it"
        )
        service.handle(envelope("n-a", refusal))
        asked_again_instead_of_the_orphan(service, sent, "n-a does not run it")
