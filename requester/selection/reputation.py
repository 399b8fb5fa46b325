"""A node's reputation (requester/reputation.py) ranks it: one that completes what it runs
comes before one that loses executions."""

from __future__ import annotations

from protocol.job import Job
from protocol.node import NodeInfo
from requester.selection.base import RankContext, Score, Unsuitable

# From -4 (always fails) to +4 (always completes); a node with no history scores 0. Less
# than a preference or a large difference in free capacity: reputation breaks near-ties.
REPUTATION_POINTS = 8.0
UNKNOWN_SCORE = 0.5  # the score of a node with no history


class ReputationRanker:
    name = "reputation"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        score = context.reputation.get(node.node_id, UNKNOWN_SCORE)
        return Score((score - UNKNOWN_SCORE) * REPUTATION_POINTS)
