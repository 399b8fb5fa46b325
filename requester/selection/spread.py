"""Rankers that spread a job's executions and the cluster's load."""

from __future__ import annotations

from protocol.job import Job
from protocol.node import NodeInfo
from requester.selection.base import RankContext, Score, Unsuitable

PREVIOUS_POINTS = -5.0  # per execution of this job the node already had


class PreviousRanker:
    """A node that already ran (or failed) this job comes after those that have not."""

    name = "previous"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        return Score(context.previous.get(node.node_id, 0) * PREVIOUS_POINTS)


class RandomRanker:
    """Less than a point at random, so nodes otherwise equal share the load."""

    name = "random"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        return Score(context.rng.random())
