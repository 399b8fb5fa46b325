"""Node selection on the requester, pure: a chain of rankers (one per module) filters the
nodes that can run a job and ranks the others (see :mod:`requester.selection.chain`)."""

from requester.selection.base import RankContext, Ranker, Score, Unsuitable
from requester.selection.capabilities import source_types
from requester.selection.chain import DEFAULT_RANKERS, NodeRank, Selection, select

__all__ = [
    "DEFAULT_RANKERS",
    "NodeRank",
    "RankContext",
    "Ranker",
    "Score",
    "Selection",
    "Unsuitable",
    "select",
    "source_types",
]
