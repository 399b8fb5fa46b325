"""Nodes a bid accept probe vetoed for this job (requester/accept_probes.py): never asked
again for it."""

from __future__ import annotations

from protocol.job import Job
from protocol.node import NodeInfo
from requester.selection.base import NEUTRAL, RankContext, Score, Unsuitable


class VetoRanker:
    name = "accept-probes"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        reason = context.vetoes.get(node.node_id)
        return NEUTRAL if reason is None else Unsuitable(f"its bid was vetoed: {reason}")
