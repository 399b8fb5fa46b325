"""Rankers on size: a job larger than a node's largest is unsuitable; free capacity ranks,
weighted by what the job mostly needs."""

from __future__ import annotations

from protocol.job import Job
from protocol.node import NodeInfo
from protocol.resources import Resources
from requester.selection.base import NEUTRAL, RankContext, Score, Unsuitable, compute_info

CAPACITY_POINTS = 10.0  # for a node entirely free


class SizeRanker:
    name = "size"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        info = compute_info(node)
        limit = info.max_job_requirements
        if not (limit.cpu or limit.memory or limit.disk or limit.gpu):  # no per-job limit
            limit = info.max_capacity
        too_big = context.needs.exceeding(limit)
        if too_big:
            return Unsuitable(f"job too large ({', '.join(too_big)})")
        return NEUTRAL


def free_share(needs: Resources, available: Resources, maximum: Resources) -> float:
    """The node's free share of CPU and memory, each weighted by how much of the node the
    job asks of it: a memory-heavy job prefers the node with memory to spare. Equal weights
    when the job asks for neither."""
    max_cpu = maximum.cpu or 1.0
    max_memory = maximum.memory or 1
    free_cpu = available.cpu / max_cpu
    free_memory = available.memory / max_memory
    cpu_weight, memory_weight = needs.cpu / max_cpu, needs.memory / max_memory
    total = cpu_weight + memory_weight
    if total <= 0:
        return (free_cpu + free_memory) / 2
    return (free_cpu * cpu_weight + free_memory * memory_weight) / total


class CapacityRanker:
    name = "capacity"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        info = compute_info(node)
        share = free_share(context.needs, info.available_capacity, info.max_capacity)
        return Score(share * CAPACITY_POINTS)
