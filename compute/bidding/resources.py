"""Bid only on a job no larger than the largest single job this node takes.

Whether the node has that much *free* right now is the capacity tracker's question.
"""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, refuse


class ResourcesRule:
    name = "resources"

    def check(self, request: BidRequest) -> BidDecision:
        too_big = request.resources.exceeding(request.max_job_resources)
        if not too_big:
            return YES
        return refuse(f"job is larger than this node takes per job: {', '.join(too_big)}")
