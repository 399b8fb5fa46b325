"""Chain bid rules: the first refusal decides; when every rule agrees, bid."""

from __future__ import annotations

from collections.abc import Sequence

from compute.bidding.base import YES, BidDecision, BidRequest, BidRule, BlockingRule
from compute.bidding.engine import EngineRule
from compute.bidding.input_size import InputSizeRule
from compute.bidding.labels import LabelsRule
from compute.bidding.locality import DataLocality, DataLocalityRule, StorageLookup
from compute.bidding.network import NetworkRule
from compute.bidding.publisher import PublisherRule
from compute.bidding.resources import ResourcesRule
from compute.bidding.storage import StorageRule
from compute.bidding.timeout import TimeoutRule
from protocol.job import Job


def blocking_rules(rules: Sequence[BidRule]) -> tuple[BlockingRule, ...]:
    """The rules that may wait on I/O for some jobs. Found once per chain: an isinstance
    check against a Protocol walks its members on every call (5% of a compute node's CPU
    when it was made per ask)."""
    return tuple(rule for rule in rules if isinstance(rule, BlockingRule))


def may_block(blocking: Sequence[BlockingRule], job: Job) -> bool:
    """Whether deciding on ``job`` may wait on I/O (``blocking``: the chain's
    :func:`blocking_rules`): then not on a thread that must not wait."""
    return any(rule.may_block(job) for rule in blocking)


def decide(request: BidRequest, rules: Sequence[BidRule]) -> BidDecision:
    """The first refusal among ``rules``, in order; a bid when none refuses."""
    for rule in rules:
        decision = rule.check(request)
        if not decision.should_bid:
            return BidDecision(False, decision.reason or f"refused by {rule.name}", rule.name)
    return YES


def default_rules(
    storage: StorageLookup | None = None, data_locality: DataLocality = DataLocality.ANYWHERE
) -> list[BidRule]:
    """Capabilities first (engine, publisher, storage), then the job's asks of this node; with
    the node's ``storage`` providers, last the rules that look at the data itself (locality,
    input size), which may touch the disk."""
    rules: list[BidRule] = [
        EngineRule(),
        PublisherRule(),
        StorageRule(),
        LabelsRule(),
        NetworkRule(),
        TimeoutRule(),
        ResourcesRule(),
    ]
    if storage is not None:
        rules += [DataLocalityRule(storage, data_locality), InputSizeRule(storage)]
    return rules
