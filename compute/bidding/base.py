"""The bid rule interface: a request describing the job and this node, and a decision.

A rule looks at a :class:`BidRequest` and says yes, or no with a reason a user can act on; one
that may wait on I/O for a job (a probe, a storage lookup) says so with ``may_block``. Free
capacity is not a rule's business; the capacity tracker checks it when reserving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from protocol.job import Job
from protocol.probes import ProbeAnswer
from protocol.resources import Resources


@dataclass(frozen=True)
class BidRequest:
    """One job, as this node would run it, and what this node offers.

    ``resources`` already carries the node's defaults. ``max_job_resources`` is the largest
    single job the node takes (its max capacity when no per-job limit is configured).
    ``max_execution_timeout_s`` of 0 means no limit.
    """

    job: Job
    resources: Resources
    node_labels: Mapping[str, str]
    engines: frozenset[str]
    publishers: frozenset[str]
    storage_sources: frozenset[str]
    max_job_resources: Resources
    accept_networked_jobs: bool
    max_execution_timeout_s: float


@dataclass(frozen=True)
class BidDecision:
    should_bid: bool
    reason: str = ""
    rule: str = ""  # the name of the rule that refused (set by the chain)


YES = BidDecision(should_bid=True)


def refuse(reason: str) -> BidDecision:
    return BidDecision(should_bid=False, reason=reason)


def from_probe(answer: ProbeAnswer) -> BidDecision:
    """An operator probe's answer (protocol/probes.py) as a bid decision."""
    return BidDecision(True, answer.reason) if answer.yes else refuse(answer.reason)


def installed_list(names: frozenset[str]) -> str:
    """``"(installed: noop, wasm)"``, or ``"(installed: none)"``."""
    return f"(installed: {', '.join(sorted(names, key=str.lower)) or 'none'})"


class BidRule(Protocol):
    @property
    def name(self) -> str: ...

    def check(self, request: BidRequest) -> BidDecision: ...


@runtime_checkable
class BlockingRule(Protocol):
    """A rule whose check may wait on I/O (a probe, a storage lookup) for some jobs."""

    def may_block(self, job: Job) -> bool: ...
