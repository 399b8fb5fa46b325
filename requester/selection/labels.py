"""Rankers on labels: the job's Constraints exclude, its ``favour_`` preferences and its own
labels order."""

from __future__ import annotations

from protocol.job import Job
from protocol.node import NodeInfo
from protocol.selectors import matches, unmet
from requester.selection.base import NEUTRAL, RankContext, Score, Unsuitable
from requester.selection.capacity import CAPACITY_POINTS

# Per preference met: more than any difference in free capacity (a full node is not asked
# however preferred: the scheduler only asks nodes with room).
PREFERENCE_POINTS = CAPACITY_POINTS + 1
AFFINITY_POINTS = 1.0  # per job label the node carries with the same value


class ConstraintsRanker:
    name = "labels"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        problems = unmet(node.labels, context.constraints)
        if problems:
            return Unsuitable(f"labels do not match {'; '.join(problems)}")
        return NEUTRAL


class PreferencesRanker:
    """``favour_zone=eu``: nodes labelled ``zone=eu`` first; the others may still run it."""

    name = "preferences"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        met = sum(1 for req in context.preferences if matches(node.labels, req))
        return Score(met * PREFERENCE_POINTS)


class AffinityRanker:
    """Nodes that carry the job's own labels (``team=data`` on both) a little first."""

    name = "affinity"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        same = sum(1 for key, value in job.labels.items() if node.labels.get(key) == value)
        return Score(same * AFFINITY_POINTS)
