"""The scheduler is pure: job, executions and nodes in, a plan out."""

from __future__ import annotations

import random
from dataclasses import replace

from protocol.bookkeeping import NO_VERDICT, Queueing, Verdict
from protocol.execution import ComputeState, DesiredState, Execution
from protocol.job import EngineSpec, Job, JobStateType
from protocol.node import ComputeNodeInfo, NodeInfo
from protocol.resources import Resources
from protocol.selectors import parse_selector
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as S
from protocol.wire import STORED
from requester.plan import ClusterView, NodeReport, Plan, SchedulerConfig
from requester.scheduler import disowned, schedule

NOW = 1_000_000_000_000
BUSY = Verdict(busy=True)
RETRYABLE = Verdict(retryable=True)
CONFIG = SchedulerConfig(over_ask=3, bid_timeout_s=10)


def node(name: str, cpu: float = 4, labels: dict[str, str] | None = None) -> NodeInfo:
    capacity = Resources(cpu=cpu, memory=8 * 1024**3)
    return NodeInfo(
        node_id=name,
        labels=labels or {},
        compute_node_info=ComputeNodeInfo(
            execution_engines=["noop", "wasm"],
            publishers=["local", "noop"],
            storage_sources=["inline", "urlDownload"],
            max_capacity=capacity,
            available_capacity=capacity,
        ),
    )


def job(count: int = 1, state: JobStateType = JobStateType.PENDING, **task: object) -> Job:
    return Job.model_validate(
        {
            "ID": "j-1",
            "Count": count,
            "State": {"StateType": state},
            "Tasks": [{"Engine": {"Type": "noop"}, **task}],
        }
    )


def execution(
    eid: str, node_id: str, state: S, modified: int = NOW, verdict: Verdict = NO_VERDICT
) -> Execution:
    return Execution(
        id=eid,
        node_id=node_id,
        job_id="j-1",
        compute_state=ComputeState(state_type=state, message=f"{eid} msg"),
        create_time=modified,
        modify_time=modified,
    ).with_verdict(verdict)


def seen(reports: dict[str, NodeReport]) -> ClusterView:
    return ClusterView(reports=reports)


def plan_for(j: Job, executions: list[Execution], nodes: list[NodeInfo]) -> Plan:
    return schedule(j, executions, nodes, NOW, CONFIG, random.Random(7))


def test_new_job_asks_count_times_over_ask_nodes() -> None:
    nodes = [node(f"n{i}") for i in range(10)]
    plan = plan_for(job(count=2), [], nodes)
    assert len(plan.ask) == 6
    assert len({n.node_id for n in plan.ask}) == 6


def test_accepts_first_count_positive_bids_in_rank_order_and_rejects_the_rest() -> None:
    nodes = [node(n) for n in ("a", "b", "c", "d")]
    executions = [
        execution("e1", "a", S.ASK_FOR_BID_REJECTED),
        execution("e2", "b", S.ASK_FOR_BID_ACCEPTED),
        execution("e3", "c", S.ASK_FOR_BID_ACCEPTED),
        execution("e4", "d", S.ASK_FOR_BID_ACCEPTED),
    ]
    plan = plan_for(job(count=2), executions, nodes)
    assert plan.accept == ["e2", "e3"]
    assert [eid for eid, _ in plan.reject] == ["e4"]
    assert plan.ask == []
    assert plan.job_state is JobStateType.RUNNING


def test_waits_for_a_better_ranked_bid_before_accepting_a_worse_one() -> None:
    nodes = [node("a"), node("b")]
    executions = [execution("e1", "a", S.ASK_FOR_BID), execution("e2", "b", S.ASK_FOR_BID_ACCEPTED)]
    plan = plan_for(job(count=1), executions, nodes)
    assert plan.accept == []
    assert plan.reject == []
    assert plan.wake_at_ns == NOW + 10 * 10**9 + 1


def test_bid_that_never_arrives_times_out_and_the_next_node_is_asked() -> None:
    nodes = [node("a"), node("b")]
    stale = NOW - 11 * 10**9
    plan = plan_for(job(count=1), [execution("e1", "a", S.ASK_FOR_BID, modified=stale)], nodes)
    assert [eid for eid, _ in plan.fail] == ["e1"]
    assert "no bid" in plan.fail[0][1]
    assert [n.node_id for n in plan.ask] == ["b"]


def test_lost_node_fails_its_execution_and_asks_elsewhere() -> None:
    plan = plan_for(job(count=1), [execution("e1", "gone", S.RUNNING)], [node("b")])
    assert plan.fail == [("e1", "node gone disconnected")]
    assert [n.node_id for n in plan.ask] == ["b"]


def test_enough_completions_complete_the_job_and_release_other_bids() -> None:
    executions = [
        execution("e1", "a", S.COMPLETED),
        execution("e2", "b", S.ASK_FOR_BID_ACCEPTED),
        execution("e3", "c", S.ASK_FOR_BID),
    ]
    plan = plan_for(job(count=1), executions, [node("a"), node("b"), node("c")])
    assert plan.job_state is JobStateType.COMPLETED
    assert [eid for eid, _ in plan.reject] == ["e2"]
    assert [eid for eid, _ in plan.cancel] == ["e3"]


def test_task_failure_fails_the_job_with_its_reason() -> None:
    executions = [
        execution("e1", "a", S.FAILED, verdict=NO_VERDICT),
        execution("e2", "b", S.RUNNING),
    ]
    plan = plan_for(job(count=2), executions, [node("a"), node("b")])
    assert plan.job_state is JobStateType.FAILED
    assert "e1 msg" in plan.job_message
    assert plan.cancel == [("e2", "job failed")]


def test_retryable_failures_retry_on_other_nodes_until_the_budget_is_spent() -> None:
    nodes = [node("a"), node("b"), node("c"), node("d")]
    one = [execution("e1", "a", S.FAILED, verdict=RETRYABLE)]
    plan = plan_for(job(count=1), one, nodes)
    assert plan.job_state is None
    assert "a" not in [n.node_id for n in plan.ask]
    three = [execution(f"e{i}", n, S.FAILED, verdict=RETRYABLE) for i, n in enumerate("abc")]
    plan = plan_for(job(count=1), three, nodes)
    assert plan.job_state is JobStateType.FAILED
    assert "gave up after 3 failed attempts" in plan.job_message


def test_nobody_able_fails_at_once_naming_what_nodes_lack() -> None:
    nodes = [node("a", labels={"zone": "us"}), node("b", cpu=1, labels={"zone": "eu"})]
    j = job(count=1, resources={"CPU": "2"})
    j.constraints = Job.model_validate(
        {
            "Tasks": [{"Engine": {"Type": "noop"}}],
            "Constraints": [{"Key": "zone", "Operator": "in", "Values": ["eu"]}],
        }
    ).constraints
    plan = plan_for(j, [], nodes)
    assert plan.job_state is JobStateType.FAILED
    assert "a: labels do not match zone in (eu)" in plan.job_message, plan.job_message
    assert "b: job too large (cpu 2 > 1)" in plan.job_message


def test_no_compute_node_connected_says_so() -> None:
    plan = plan_for(job(), [], [])
    assert plan.job_state is JobStateType.FAILED
    assert "no compute node is connected" in plan.job_message


def test_busy_nodes_queue_the_job_with_backoff_until_the_queue_timeout() -> None:
    nodes = [node("a")]
    busy = [execution("e1", "a", S.ASK_FOR_BID_REJECTED, verdict=BUSY)]
    plan = plan_for(job(count=1, timeouts={"QueueTimeout": 60}), busy, nodes)
    assert plan.job_state is JobStateType.QUEUED
    assert plan.queueing.since_ns == NOW
    assert plan.wake_at_ns == NOW + 10**9

    queued = job(count=1, state=JobStateType.QUEUED, timeouts={"QueueTimeout": 60})
    queued = queued.with_queueing(Queueing(since_ns=NOW - 61 * 10**9))
    plan = plan_for(queued, busy, nodes)
    assert plan.job_state is JobStateType.FAILED
    assert "queued for 60s" in plan.job_message


def test_new_round_after_backoff_asks_previously_busy_nodes_again() -> None:
    nodes = [node("a")]
    queued = job(count=1, state=JobStateType.QUEUED, timeouts={"QueueTimeout": 60})
    queued = queued.with_queueing(Queueing(since_ns=NOW - 5, round_ns=NOW - 1))
    old_refusal = [execution("e1", "a", S.ASK_FOR_BID_REJECTED, modified=NOW - 3, verdict=BUSY)]
    plan = plan_for(queued, old_refusal, nodes)
    assert [n.node_id for n in plan.ask] == ["a"]


def test_stopped_job_cancels_live_executions() -> None:
    executions = [execution("e1", "a", S.RUNNING), execution("e2", "b", S.COMPLETED)]
    plan = plan_for(job(state=JobStateType.STOPPED), executions, [node("a")])
    assert plan.cancel == [("e1", "job stopped")]
    assert plan.ask == []


def test_a_job_whose_only_node_vanished_waits_for_another() -> None:
    plan = plan_for(job(count=1), [execution("e1", "gone", S.RUNNING)], [])
    assert plan.fail == [("e1", "node gone disconnected")]
    assert plan.job_state is JobStateType.QUEUED


def test_a_node_that_completed_the_job_is_not_asked_again_in_a_later_round() -> None:
    nodes = [node("a"), node("b")]
    queued = job(count=2, state=JobStateType.QUEUED, timeouts={"QueueTimeout": 60})
    queued = queued.with_queueing(Queueing(since_ns=NOW - 5, round_ns=NOW - 1))
    earlier = [
        execution("e1", "a", S.COMPLETED, modified=NOW - 4),
        execution("e2", "b", S.ASK_FOR_BID_REJECTED, modified=NOW - 3, verdict=BUSY),
    ]
    plan = plan_for(queued, earlier, nodes)
    assert [n.node_id for n in plan.ask] == ["b"]


def test_lost_asks_do_not_spend_the_attempt_budget_but_lost_runs_do() -> None:
    nodes = [node("a"), node("b"), node("c"), node("d")]
    old = NOW - 11 * 10**9
    asks = [execution(f"e{i}", name, S.ASK_FOR_BID, modified=old) for i, name in enumerate("abc")]
    plan = plan_for(job(count=1), asks, nodes)
    assert sorted(e for e, _ in plan.fail) == ["e0", "e1", "e2"]
    assert plan.job_state is not JobStateType.FAILED
    assert [n.node_id for n in plan.ask] == ["d"]

    never_ran = Verdict(retryable=True, never_ran=True)
    lost_runs = [execution(f"r{i}", name, S.RUNNING) for i, name in enumerate(["x", "y", "z"])]
    earlier = [execution(f"e{i}", n, S.FAILED, verdict=never_ran) for i, n in enumerate("abc")]
    plan = plan_for(job(count=1), earlier + lost_runs, nodes)
    assert plan.job_state is JobStateType.FAILED
    assert "gave up after 3 failed attempts" in plan.job_message
    assert "x: node x disconnected" in plan.job_message


def test_a_job_only_a_silent_node_could_run_waits_for_it_instead_of_failing() -> None:
    away = [node("a")]
    plan = schedule(job(count=1), [], [], NOW, CONFIG, random.Random(7), ClusterView(away=away))
    assert plan.job_state is JobStateType.QUEUED
    assert "no compute node is connected" in plan.job_message

    unable = [node("a", labels={"zone": "z1"})]
    picky = job(count=1)
    picky.constraints = parse_selector("zone=z2")
    plan = schedule(picky, [], [], NOW, CONFIG, random.Random(7), ClusterView(away=unable))
    assert plan.job_state is JobStateType.FAILED


def test_an_execution_its_node_no_longer_lists_is_failed_as_lost() -> None:
    nodes = [node("a"), node("b")]
    started = NOW - 60 * 10**9
    running = execution("e1", "a", S.RUNNING, modified=started)
    report = {"a": NodeReport(at_ns=NOW, executions=frozenset())}
    plan = schedule(job(count=1), [running], nodes, NOW, CONFIG, random.Random(7), seen(report))
    assert plan.fail == [("e1", "node a no longer has it (a message was lost)")]
    assert [n.node_id for n in plan.ask] == ["b"]

    listed = {"a": NodeReport(at_ns=NOW, executions=frozenset({"e1"}))}
    assert disowned([running], listed, CONFIG) == []
    too_soon = {"a": NodeReport(at_ns=started + 10**9, executions=frozenset())}
    assert disowned([running], too_soon, CONFIG) == []
    asking = execution("e2", "a", S.ASK_FOR_BID, modified=started)
    assert disowned([asking], report, CONFIG) == []  # awaiting a bid: the bid timeout's
    # A direct ask is answered by its run: a node that no longer has it lost the answer.
    direct = asking.model_copy(update={"desired_state": DesiredState(state_type=D.RUNNING)})
    assert disowned([direct], report, CONFIG) == [direct]
    plan = schedule(job(count=1), [direct], nodes, NOW, CONFIG, random.Random(7), seen(report))
    assert plan.fail == [("e2", "node a no longer has it (a message was lost)")]


def test_more_count_than_able_nodes_queues_naming_the_shortage_then_fails_cancelling_runs() -> None:
    nodes = [node("a"), node("b")]
    running = [execution("e1", "a", S.RUNNING), execution("e2", "b", S.BID_ACCEPTED)]
    plan = plan_for(job(count=3, timeouts={"QueueTimeout": 60}), running, nodes)
    assert plan.job_state is JobStateType.QUEUED
    assert "1 more node(s) needed for Count=3" in plan.job_message
    assert "a: already has an execution of this job" in plan.job_message
    assert "no compute node is connected" not in plan.job_message
    assert plan.cancel == []

    queued = job(count=3, state=JobStateType.QUEUED, timeouts={"QueueTimeout": 60})
    queued = queued.with_queueing(Queueing(since_ns=NOW - 61 * 10**9))
    plan = plan_for(queued, running, nodes)
    assert plan.job_state is JobStateType.FAILED
    assert "queued for 60s without a node: 1 more node(s) needed" in plan.job_message
    assert sorted(plan.cancel) == [("e1", "job failed"), ("e2", "job failed")]


SETTLE = NOW + 5 * 10**9


def settling_plan(j: Job, executions: list[Execution], nodes: list[NodeInfo]) -> Plan:
    return schedule(
        j, executions, nodes, NOW, CONFIG, random.Random(7), ClusterView(settle_until_ns=SETTLE)
    )


def test_a_restarted_requester_waits_for_nodes_to_announce_before_deciding() -> None:
    plan = settling_plan(job(count=1), [], [])
    assert (plan.job_state, plan.fail, plan.ask, plan.wake_at_ns) == (None, [], [], SETTLE)

    running = [execution("e1", "quiet", S.RUNNING)]
    plan = settling_plan(job(count=1, state=JobStateType.RUNNING), running, [node("a")])
    assert (plan.fail, plan.ask, plan.cancel) == ([], [], [])
    assert plan.wake_at_ns == SETTLE

    # Settled: the node never came back, so its execution is lost and another node is asked.
    plan = plan_for(job(count=1, state=JobStateType.RUNNING), running, [node("a")])
    assert plan.fail == [("e1", "node quiet disconnected")]
    assert [n.node_id for n in plan.ask] == ["a"]


def test_while_settling_a_job_that_can_run_is_asked_for_at_once() -> None:
    plan = settling_plan(job(count=1), [], [node("a")])
    assert [n.node_id for n in plan.ask] == ["a"]


def test_more_count_than_the_cluster_has_nodes_fails_at_once_like_bacalhau() -> None:
    nodes = [node("a"), node("b")]
    running = [execution("e1", "a", S.RUNNING), execution("e2", "b", S.RUNNING)]
    plan = plan_for(job(count=3, state=JobStateType.RUNNING), running, nodes)
    assert plan.job_state is JobStateType.FAILED
    assert plan.job_message.startswith("no node could run the job: 1 more node(s) needed")
    assert sorted(plan.cancel) == [("e1", "job failed"), ("e2", "job failed")]


def queued_job(round_ns: int, retries: int) -> Job:
    queued = job(count=1, state=JobStateType.QUEUED, timeouts={"QueueTimeout": 10**6})
    return queued.with_queueing(Queueing(NOW - 10**9, round_ns=round_ns, retries=retries))


def test_queue_backoff_is_capped_however_many_rounds_went_by() -> None:
    busy = [execution("e1", "a", S.ASK_FOR_BID_REJECTED, verdict=BUSY)]
    plan = plan_for(queued_job(round_ns=NOW - 5 * 10**9, retries=5000), busy, [node("a")])
    assert plan.job_state is JobStateType.QUEUED
    assert plan.queueing.retries == 5001
    assert plan.wake_at_ns == NOW + int(CONFIG.queue_backoff_max_s * 1e9)


def test_an_evaluation_before_the_next_round_keeps_that_round_and_its_refusals() -> None:
    """Capacity news re-evaluates queued jobs often: that must not push the round back,
    count as a retry, or ask again the nodes that refused the round just tried."""
    tried = NOW - 2 * 10**9
    later = NOW + 3 * 10**9
    queued = queued_job(round_ns=later, retries=2)
    queued = queued.with_queueing(replace(queued.queueing, prev_round_ns=tried))
    refused = [execution("e1", "a", S.ASK_FOR_BID_REJECTED, modified=tried + 1, verdict=BUSY)]
    plan = plan_for(queued, refused, [node("a"), node("b")])
    assert [n.node_id for n in plan.ask] == ["b"]  # a refused this round; b was not asked

    refused.append(execution("e2", "b", S.ASK_FOR_BID_REJECTED, modified=NOW, verdict=BUSY))
    plan = plan_for(queued, refused, [node("a"), node("b")])
    assert plan.ask == []
    assert plan.job_state is JobStateType.QUEUED
    assert plan.queueing == Queueing(NOW - 10**9, later, tried, 2)
    assert plan.wake_at_ns == later

    # When the round comes, everyone may be asked again, and the round just ended is kept.
    plan = schedule(queued, refused, [node("a"), node("b")], later, CONFIG, random.Random(7))
    assert sorted(n.node_id for n in plan.ask) == ["a", "b"]


def test_count_beyond_the_nodes_fails_before_any_bid_is_accepted() -> None:
    """Bids from every node, but fewer nodes than Count: no node may be left holding an
    accepted execution of a failed job."""
    nodes = [node("a"), node("b")]
    bids = [
        execution("e1", "a", S.ASK_FOR_BID_ACCEPTED),
        execution("e2", "b", S.ASK_FOR_BID_ACCEPTED),
    ]
    plan = plan_for(job(count=3), bids, nodes)
    assert plan.job_state is JobStateType.FAILED
    assert plan.accept == []
    assert sorted(plan.reject) == [("e1", "job failed"), ("e2", "job failed")]

    plan = plan_for(job(count=3), [], nodes)  # and nobody is asked in the first place
    assert plan.job_state is JobStateType.FAILED
    assert plan.ask == []
    assert plan.job_message == (
        "no node could run the job: 1 more node(s) needed for Count=3, 2 could take one"
    )


def test_a_stored_job_whose_size_no_longer_parses_fails_naming_it() -> None:
    stored = Job.model_validate(
        {"ID": "j-1", "Tasks": [{"Engine": {"Type": "noop"}, "Resources": {"CPU": "100000"}}]},
        context=STORED,
    )
    running = [execution("e1", "a", S.RUNNING)]
    plan = plan_for(stored, running, [node("a")])
    assert plan.job_state is JobStateType.FAILED
    assert plan.job_message.startswith("Tasks[0].Resources: ")
    assert plan.cancel == [("e1", "job failed")]


def test_a_busy_node_that_announced_itself_since_is_asked_again_at_once() -> None:
    """Capacity news: a node that refused as busy and has announced itself since may have
    room now; the job asks it without waiting for its next round, once per announcement."""
    later = NOW + 3 * 10**9
    queued = queued_job(round_ns=later, retries=1)
    queued = queued.with_queueing(replace(queued.queueing, prev_round_ns=NOW - 5 * 10**9))
    refused_at = NOW - 10**9
    busy = [execution("e1", "a", S.ASK_FOR_BID_REJECTED, modified=refused_at, verdict=BUSY)]

    def asked(announced_at: int) -> list[str]:
        plan = schedule(
            queued,
            busy,
            [node("a")],
            NOW,
            CONFIG,
            random.Random(7),
            ClusterView(announced={"a": announced_at}),
        )
        return [n.node_id for n in plan.ask]

    assert asked(refused_at - 1) == []  # no news since it refused
    assert asked(refused_at + 1) == ["a"]  # it announced itself after refusing


def test_a_partly_placed_queued_job_stays_queued_while_it_asks_for_the_rest() -> None:
    """Flipping to Running at every round restarted its queue clock and backoff: the queue
    timeout never came."""
    queued = queued_job(round_ns=NOW - 1, retries=3)
    queued.count = 2
    runs = [execution("e1", "a", S.RUNNING, modified=NOW - 10 * 10**9)]
    plan = plan_for(queued, runs, [node("a"), node("b")])
    assert [n.node_id for n in plan.ask] == ["b"]
    assert plan.job_state is None  # still Queued, its queue clock and retries kept


def test_an_ask_sent_before_a_restart_does_not_wake_the_requester_in_a_loop() -> None:
    old_ask = [execution("e1", "a", S.ASK_FOR_BID, modified=NOW - 60 * 10**9)]
    plan = settling_plan(job(count=1), old_ask, [])
    assert plan.wake_at_ns == SETTLE  # not the ask's long-past bid deadline
    assert plan.fail == []


def test_a_stored_job_whose_specs_no_longer_parse_fails_naming_them() -> None:
    broken = job(count=1)
    broken.task.engine = EngineSpec.model_validate(
        {"Type": "wasm", "Params": {"EntryModule": {"Bogus": 1}}}, context=STORED
    )
    plan = plan_for(broken, [execution("e1", "a", S.RUNNING)], [node("a")])
    assert plan.job_state is JobStateType.FAILED
    assert plan.job_message.startswith("Tasks[0].Engine")
    assert plan.cancel == [("e1", "job failed")]


def test_a_node_whose_execution_this_plan_fails_is_described_by_that_failure() -> None:
    silent = [execution("e1", "a", S.ASK_FOR_BID, modified=NOW - 11 * 10**9)]
    plan = plan_for(job(count=1), silent, [node("a")])
    assert plan.fail == [("e1", "no bid from a in time")]
    assert plan.ask == []  # not again in this round
    assert plan.job_state is JobStateType.QUEUED
    assert plan.job_message == "waiting for a node: a: no bid from a in time"


def test_each_ask_says_why_its_node_ranks_there_and_who_was_skipped() -> None:
    j = job(count=1)
    j.constraints = Job.model_validate(
        {
            "Tasks": [{"Engine": {"Type": "noop"}}],
            "Constraints": [{"Key": "zone", "Operator": "=", "Values": ["eu"]}],
        }
    ).constraints
    nodes = [node("a", labels={"zone": "eu"}), node("b", labels={"zone": "us"})]
    plan = schedule(j, [], nodes, NOW, SchedulerConfig(over_ask=1), random.Random(7))
    assert [n.node_id for n in plan.ask] == ["a"]
    assert plan.why["a"].startswith("ranked 1 of 1, score ")
    assert plan.why["a"].endswith("; skipped b: labels do not match zone = eu")
