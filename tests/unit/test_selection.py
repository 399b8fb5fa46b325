"""Selection is pure: which nodes can run a job, and in which order to ask them."""

from __future__ import annotations

import random
from collections import Counter

from protocol.job import Job
from protocol.node import ComputeNodeInfo, NodeInfo
from protocol.resources import Resources
from requester.selection import select

GIB = 1024**3
NEEDS = Resources(cpu=0.5, memory=GIB // 4)


def node(
    name: str,
    free_cpu: float = 4,
    labels: dict[str, str] | None = None,
    sources: tuple[str, ...] = ("inline", "urlDownload"),
) -> NodeInfo:
    return NodeInfo(
        node_id=name,
        labels=labels or {},
        compute_node_info=ComputeNodeInfo(
            execution_engines=["noop", "wasm"],
            publishers=["local", "noop"],
            storage_sources=list(sources),
            max_capacity=Resources(cpu=4, memory=8 * GIB),
            available_capacity=Resources(cpu=free_cpu, memory=8 * GIB),
        ),
    )


def job(**fields: object) -> Job:
    task = {"Engine": {"Type": "noop"}, **dict(fields.pop("task", {}))}  # type: ignore[call-overload]
    return Job.model_validate({"ID": "j-1", "Tasks": [task], **fields})


def ranked(j: Job, nodes: list[NodeInfo], previous: dict[str, int] | None = None) -> list[str]:
    selection = select(j, nodes, previous or {}, random.Random(3), NEEDS)
    return [n.node_id for n in selection.ranked]


def test_more_free_capacity_ranks_first() -> None:
    assert ranked(job(), [node("busy", free_cpu=0.5), node("idle", free_cpu=4)]) == ["idle", "busy"]


def test_nodes_with_the_job_s_labels_rank_first_among_equals() -> None:
    nodes = [node("plain"), node("matching", labels={"team": "fish"})]
    assert ranked(job(Labels={"team": "fish"}), nodes) == ["matching", "plain"]


def test_nodes_that_ran_the_job_before_rank_last() -> None:
    assert ranked(job(), [node("again"), node("fresh")], {"again": 1}) == ["fresh", "again"]


def test_equal_nodes_share_the_first_place() -> None:
    nodes = [node("a"), node("b"), node("c")]
    rng = random.Random(11)
    firsts = Counter(select(job(), nodes, {}, rng, NEEDS).ranked[0].node_id for _ in range(300))
    assert set(firsts) == {"a", "b", "c"}
    assert min(firsts.values()) > 50


LOCAL_INPUT = {"Source": {"Type": "localDirectory", "Params": {"SourcePath": "/d"}}, "Target": "/d"}


def test_filters_name_what_each_node_lacks() -> None:
    j = job(
        Constraints=[{"Key": "zone", "Operator": "=", "Values": ["eu"]}],
        task={
            "InputSources": [
                {
                    "Source": {"Type": "localDirectory", "Params": {"SourcePath": "/d"}},
                    "Target": "/d",
                }
            ]
        },
    )
    nodes = [
        node("no-local", labels={"zone": "eu"}),
        node("us", labels={"zone": "us"}, sources=("local",)),
        node("ok", labels={"zone": "eu"}, sources=("local",)),
    ]
    selection = select(j, nodes, {}, random.Random(1), NEEDS)
    assert [n.node_id for n in selection.ranked] == ["ok"]
    assert selection.rejected["no-local"].startswith("storage local not installed (a node")
    assert "--allow-listed-local-paths" in selection.rejected["no-local"]
    assert selection.rejected["us"].startswith("labels do not match")


def test_a_job_larger_than_a_node_is_filtered_out() -> None:
    selection = select(job(), [node("small")], {}, random.Random(1), Resources(cpu=8))
    assert selection.ranked == []
    assert selection.rejected["small"].startswith("job too large")


def constrained(*constraints: dict[str, object]) -> Job:
    return job(Constraints=list(constraints))


def test_a_favour_preference_orders_but_never_excludes() -> None:
    eu, us = node("eu", labels={"zone": "eu"}), node("us", labels={"zone": "us"})
    prefer_eu = constrained({"Key": "favour_zone", "Operator": "=", "Values": ["eu"]})
    assert ranked(prefer_eu, [us, eu]) == ["eu", "us"]
    prefer_asia = constrained({"Key": "favour_zone", "Operator": "in", "Values": ["asia"]})
    assert sorted(ranked(prefer_asia, [us, eu])) == ["eu", "us"]  # nobody meets it: all run
    # a preference outweighs free capacity; a hard constraint still excludes
    busy_eu = node("eu", free_cpu=0.5, labels={"zone": "eu"})
    assert ranked(prefer_eu, [us, busy_eu]) == ["eu", "us"]
    both = constrained(
        {"Key": "favour_zone", "Operator": "=", "Values": ["us"]},
        {"Key": "zone", "Operator": "=", "Values": ["eu"]},
    )
    selection = select(both, [us, eu], {}, random.Random(3), NEEDS)
    assert [n.node_id for n in selection.ranked] == ["eu"]
    assert selection.rejected == {"us": "labels do not match zone = eu"}


def test_free_capacity_is_weighted_by_what_the_job_needs_most() -> None:
    def sized(name: str, cpu: float, memory: int) -> NodeInfo:
        made = node(name)
        assert made.compute_node_info is not None
        made.compute_node_info.available_capacity = Resources(cpu=cpu, memory=memory)
        return made

    cpu_rich = sized("cpu-rich", cpu=4, memory=1 * GIB)
    memory_rich = sized("memory-rich", cpu=1, memory=8 * GIB)
    memory_heavy = Resources(cpu=0.1, memory=4 * GIB)
    cpu_heavy = Resources(cpu=3, memory=GIB // 64)
    for needs, first in ((memory_heavy, "memory-rich"), (cpu_heavy, "cpu-rich")):
        selection = select(job(), [cpu_rich, memory_rich], {}, random.Random(3), needs)
        assert selection.ranked[0].node_id == first, needs


def test_every_able_node_s_scores_are_kept_and_explained() -> None:
    nodes = [node("a", labels={"team": "fish"}), node("b", free_cpu=1), node("local-less")]
    nodes[2].compute_node_info.publishers = ["noop"]  # type: ignore[union-attr]
    local = job(Labels={"team": "fish"}, task={"Publisher": {"Type": "local"}})
    selection = select(local, nodes, {"b": 1}, random.Random(3), NEEDS)
    assert [n.node_id for n in selection.ranked] == ["a", "b"]
    assert selection.rejected == {"local-less": "publisher local not installed"}
    a, b = selection.ranks["a"], selection.ranks["b"]
    assert a.scores["affinity"] == 1
    assert a.scores["capacity"] == 10  # entirely free
    assert b.scores["previous"] == -5
    assert a.total == sum(a.scores.values()) > b.total
    assert a.explain().startswith(f"score {a.total:.3g} (capacity 10, affinity 1, random ")
    assert "previous -5" in b.explain()
