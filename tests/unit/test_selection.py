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
