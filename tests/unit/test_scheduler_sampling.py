"""A large cluster is sampled: a job looks at a few able nodes, not all of them, unless the
sample cannot take it."""

from __future__ import annotations

import random

from protocol.job import Job
from protocol.states import ExecutionStateType as S
from requester.asking import SAMPLE_FLOOR
from requester.plan import ClusterView
from requester.scheduler import schedule
from requester.selection import select
from tests.unit.test_scheduler import NOW, execution, job, node
from tests.unit.test_scheduler_room import DIRECT, FULL, ROOMY
from tests.unit.test_selection import NEEDS

NODES = [node(f"n{i:03}") for i in range(300)]


def test_a_limited_scan_stops_at_its_limit_from_a_random_start() -> None:
    sample = select(job(), NODES, {}, random.Random(1), NEEDS, limit=SAMPLE_FLOOR)
    assert len(sample.ranked) == SAMPLE_FLOOR
    assert not sample.complete
    other = select(job(), NODES, {}, random.Random(2), NEEDS, limit=SAMPLE_FLOOR)
    assert {n.node_id for n in other.ranked} != {n.node_id for n in sample.ranked}
    whole = select(job(), NODES[:10], {}, random.Random(1), NEEDS, limit=SAMPLE_FLOOR)
    assert whole.complete
    assert len(whole.ranked) == 10


def test_a_large_cluster_is_sampled_when_the_sample_has_room() -> None:
    plan = schedule(job(), [], NODES, NOW, DIRECT, random.Random(3))
    assert len(plan.ask) == 1
    assert len(plan.eligible) <= SAMPLE_FLOOR  # only the sample was looked at


def test_when_the_sample_is_full_every_node_is_looked_at() -> None:
    """Only the last node has room: a sample of full nodes must not make the job wait."""
    rooms = {n.node_id: FULL for n in NODES}
    rooms["n299"] = ROOMY
    for seed in range(5):
        plan = schedule(job(), [], NODES, NOW, DIRECT, random.Random(seed), ClusterView(room=rooms))
        assert [n.node_id for n in plan.ask] == ["n299"], seed
        assert not plan.wait_for_room


def test_nodes_that_hold_the_job_do_not_count_as_room_in_the_sample() -> None:
    """Count=40 with 39 running: the one node left must be found, however the sample fell."""
    running = [execution(f"e{i}", f"n{i:03}", S.RUNNING) for i in range(39)]
    few = NODES[:40]
    rooms = {n.node_id: ROOMY for n in few}
    big = job(count=40)
    for seed in range(5):
        plan = schedule(
            big, running, few, NOW, DIRECT, random.Random(seed), ClusterView(room=rooms)
        )
        assert [n.node_id for n in plan.ask] == ["n039"], seed


def test_a_job_with_preferences_looks_at_every_node() -> None:
    preferring = job()
    preferring.constraints = Job.model_validate(
        {
            "Tasks": [{"Engine": {"Type": "noop"}}],
            "Constraints": [{"Key": "favour_zone", "Operator": "=", "Values": ["rare"]}],
        }
    ).constraints
    nodes = [*NODES[:299], node("rare-one", labels={"zone": "rare"})]
    plan = schedule(preferring, [], nodes, NOW, DIRECT, random.Random(3))
    assert [n.node_id for n in plan.ask] == ["rare-one"]
