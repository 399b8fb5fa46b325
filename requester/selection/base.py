"""The ranker interface: given a job and a node, unsuitable (with a reason) or a score.

A ranking chain (:mod:`requester.selection.chain`) asks every ranker in turn; the first
that finds the node unsuitable decides, and otherwise the node's rank is the sum of the
scores. Rankers are pure: what they need beyond the job and the node comes in a
:class:`RankContext`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from protocol.job import Job, LabelSelectorRequirement
from protocol.node import ComputeNodeInfo, NodeInfo
from protocol.resources import Resources


@dataclass(frozen=True)
class Unsuitable:
    """The node cannot run the job, and why, in words an operator can act on."""

    reason: str


@dataclass(frozen=True)
class Score:
    """How much the ranker favours the node: higher ranks first; 0 is indifferent."""

    value: float


NEUTRAL = Score(0.0)


@dataclass(frozen=True)
class RankContext:
    """What the rankers need besides the job and the node, worked out once per job."""

    needs: Resources  # the job's size, with the requester's defaults
    previous: Mapping[str, int]  # executions of this job each node has had
    rng: random.Random
    sources: frozenset[str] = frozenset()  # every storage source type the job reads
    constraints: tuple[LabelSelectorRequirement, ...] = ()  # the hard ones
    preferences: tuple[LabelSelectorRequirement, ...] = ()  # favour_ ones, on their label
    reputation: Mapping[str, float] = field(default_factory=dict)  # node -> score in (0, 1)
    vetoes: Mapping[str, str] = field(default_factory=dict)  # node -> why a probe said no


class Ranker(Protocol):
    @property
    def name(self) -> str: ...

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score: ...


def compute_info(node: NodeInfo) -> ComputeNodeInfo:
    """The compute side of a node the chain already knows to be a compute node."""
    info = node.compute_node_info
    if info is None:  # the chain skips these before any ranker sees them
        raise ValueError(f"{node.node_id} is not a compute node")
    return info


def lower(names: list[str]) -> set[str]:
    return {name.lower() for name in names}
