"""Bid on a job asking for network access only when this node accepts networked jobs."""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, refuse
from protocol.job import NetworkType


class NetworkRule:
    name = "network"

    def check(self, request: BidRequest) -> BidDecision:
        network = request.job.task.network.type
        if network == NetworkType.NONE or request.accept_networked_jobs:
            return YES
        return refuse(
            f"this node does not accept networked jobs (the job asks for Network {network})"
        )
