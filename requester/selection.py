"""Node selection, pure: filter the nodes that can run a job, then rank them.

Filters: compute node, engine, publisher and every storage source installed, constraints
met by the node's labels, the job fits the node's largest job. Rank: free capacity first,
then label affinity, fewer previous executions of this job, and a little randomness so equal
nodes share the load.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from protocol.job import Job
from protocol.node import NodeInfo
from protocol.resources import Resources
from protocol.selectors import unmet
from protocol.specs import ENGINES, SOURCES
from protocol.specs.engines import WasmParams

# How an operator turns on a storage source that is off by default.
SOURCE_HINTS = {
    "local": " (a node reads local paths only under --allow-listed-local-paths)",
    "ipfs": " (a node reads IPFS with --ipfs-connect)",
}


@dataclass(frozen=True)
class Selection:
    ranked: list[NodeInfo]
    rejected: dict[str, str] = field(default_factory=dict)


def source_types(job: Job) -> set[str]:
    """Every storage source type the job's task needs, the wasm entry module's included."""
    task = job.task
    types = {source.source.type for source in task.input_sources}
    if task.engine.type == "wasm":
        params = ENGINES.parse_as(task.engine, WasmParams, "Tasks[0].Engine")
        if not isinstance(params.entry_module, str):
            types.add(params.entry_module.source.type)
    return {SOURCES.spelled(name) for name in types}


def _lower(names: Sequence[str]) -> set[str]:
    return {name.lower() for name in names}


def why_not(job: Job, node: NodeInfo, needs: Resources) -> str:
    """The reason ``node`` cannot run ``job``, or "" when it can."""
    info = node.compute_node_info
    if info is None:
        return "not a compute node"
    task = job.task
    if task.engine.type.lower() not in _lower(info.execution_engines):
        return f"engine {task.engine.type} not installed"
    if task.publisher.type.lower() not in _lower(info.publishers):
        return f"publisher {task.publisher.type} not installed"
    missing = sorted(t for t in source_types(job) if t.lower() not in _lower(info.storage_sources))
    if missing:
        hints = "".join(SOURCE_HINTS.get(name, "") for name in missing)
        return f"storage {', '.join(missing)} not installed{hints}"
    labels_unmet = unmet(node.labels, job.constraints)
    if labels_unmet:
        return f"labels do not match {'; '.join(labels_unmet)}"
    limit = info.max_job_requirements
    if limit == Resources():
        limit = info.max_capacity
    too_big = needs.exceeding(limit)
    if too_big:
        return f"job too large ({', '.join(too_big)})"
    return ""


def _score(job: Job, node: NodeInfo, previous: Mapping[str, int], rng: random.Random) -> float:
    info = node.compute_node_info
    assert info is not None
    max_cpu = info.max_capacity.cpu or 1.0
    max_memory = info.max_capacity.memory or 1
    free = (info.available_capacity.cpu / max_cpu + info.available_capacity.memory / max_memory) / 2
    affinity = sum(1 for key, value in job.labels.items() if node.labels.get(key) == value)
    return free * 10 + affinity - previous.get(node.node_id, 0) * 5 + rng.random()


def select(
    job: Job,
    nodes: Sequence[NodeInfo],
    previous: Mapping[str, int],
    rng: random.Random,
    needs: Resources,
) -> Selection:
    """Nodes able to run ``job``, best first, and why each other node is not."""
    able: list[NodeInfo] = []
    rejected: dict[str, str] = {}
    for node in nodes:
        if node.compute_node_info is None:
            continue
        reason = why_not(job, node, needs)
        if reason:
            rejected[node.node_id] = reason
        else:
            able.append(node)
    scores = {node.node_id: _score(job, node, previous, rng) for node in able}
    able.sort(key=lambda node: scores[node.node_id], reverse=True)
    return Selection(ranked=able, rejected=rejected)
