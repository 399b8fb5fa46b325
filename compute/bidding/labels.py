"""Bid only when this node's own labels meet the job's Constraints.

The requester filtered on labels too, but its view may be stale: the node checks for itself.
Soft ``favour_`` preferences only order the requester's choice: a node never refuses on them.
"""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, refuse
from protocol.selectors import hard_unmet


class LabelsRule:
    name = "labels"

    def check(self, request: BidRequest) -> BidDecision:
        problems = hard_unmet(request.node_labels, request.job.constraints)
        if not problems:
            return YES
        return refuse(f"node labels do not meet the job's constraints: {'; '.join(problems)}")
