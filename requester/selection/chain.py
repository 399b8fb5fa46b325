"""The ranking chain: filter the nodes that can run a job, then rank them, and say why.

Every ranker sees every compute node in turn: the first that finds it unsuitable names the
reason, and otherwise the node's rank is the sum of the rankers' scores, each kept, so the
job's history can show why one node came before another.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from protocol.job import Job
from protocol.node import NodeInfo
from protocol.resources import Resources
from protocol.selectors import is_preference, preferences
from requester.selection.base import RankContext, Ranker, Score
from requester.selection.capabilities import ENGINE, PUBLISHER, StorageRanker, source_types
from requester.selection.capacity import CapacityRanker, SizeRanker
from requester.selection.labels import AffinityRanker, ConstraintsRanker, PreferencesRanker
from requester.selection.reputation import ReputationRanker
from requester.selection.spread import PreviousRanker, RandomRanker
from requester.selection.vetoes import VetoRanker

# Filters first (the cheapest and the most telling refusals lead), then the orderings;
# randomness last, so it draws once per able node, in the order the nodes were given.
DEFAULT_RANKERS: tuple[Ranker, ...] = (
    VetoRanker(),
    ENGINE,
    PUBLISHER,
    StorageRanker(),
    ConstraintsRanker(),
    SizeRanker(),
    CapacityRanker(),
    PreferencesRanker(),
    AffinityRanker(),
    PreviousRanker(),
    ReputationRanker(),
    RandomRanker(),
)


@dataclass(frozen=True)
class NodeRank:
    """Why an able node ranks where it does: each ranker's score, and their sum."""

    scores: Mapping[str, float]

    @property
    def total(self) -> float:
        return sum(self.scores.values())

    def explain(self) -> str:
        """``score 12.3 (capacity 9.5, preferences 3, random 0.21)``: nonzero scores only."""
        parts = [f"{name} {value:.3g}" for name, value in self.scores.items() if value]
        return f"score {self.total:.3g}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass(frozen=True)
class Selection:
    ranked: list[NodeInfo]  # able nodes, best first
    rejected: dict[str, str] = field(default_factory=dict)  # node -> why it cannot
    ranks: dict[str, NodeRank] = field(default_factory=dict)  # able node -> its scores
    complete: bool = True  # every node was looked at (False: the scan stopped at its limit)


def select(
    job: Job,
    nodes: Sequence[NodeInfo],
    previous: Mapping[str, int],
    rng: random.Random,
    needs: Resources,
    rankers: Sequence[Ranker] = DEFAULT_RANKERS,
    reputation: Mapping[str, float] | None = None,
    limit: int | None = None,
    vetoes: Mapping[str, str] | None = None,
) -> Selection:
    """Nodes able to run ``job``, best first, and why each other compute node is not.
    ``reputation``: each node's score (see requester/reputation.py), unknown nodes 0.5.
    ``vetoes``: the nodes an accept probe said no to for this job, and why.

    ``limit``: stop once that many able nodes are found, starting at a random node, as
    Nomad's scheduler does: placing a job then costs the same on 10 nodes or 1,000 (the best
    of a random sample, not of all; the caller scans everything when the sample falls short).
    """
    order = nodes
    if limit is not None and len(nodes) > limit:
        start = rng.randrange(len(nodes))
        order = [*nodes[start:], *nodes[:start]]
    context = RankContext(
        needs=needs,
        previous=previous,
        rng=rng,
        sources=frozenset(source_types(job)),
        constraints=tuple(req for req in job.constraints if not is_preference(req)),
        preferences=tuple(preferences(job.constraints)),
        reputation=reputation or {},
        vetoes=vetoes or {},
    )
    rejected: dict[str, str] = {}
    ranks: dict[str, NodeRank] = {}
    able: list[NodeInfo] = []
    complete = True
    for node in order:
        if limit is not None and len(able) >= limit:
            complete = False
            break
        if node.compute_node_info is None:
            continue  # a requester: not a candidate, not worth a reason
        scores: dict[str, float] = {}
        for ranker in rankers:
            result = ranker.rank(job, node, context)
            if isinstance(result, Score):
                scores[ranker.name] = result.value
                continue
            rejected[node.node_id] = result.reason
            break
        else:
            able.append(node)
            ranks[node.node_id] = NodeRank(scores)
    able.sort(key=lambda node: ranks[node.node_id].total, reverse=True)
    return Selection(ranked=able, rejected=rejected, ranks=ranks, complete=complete)
