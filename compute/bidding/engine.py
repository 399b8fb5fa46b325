"""Bid only when the job's engine is installed here."""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, installed_list, refuse


class EngineRule:
    name = "engine"

    def check(self, request: BidRequest) -> BidDecision:
        wanted = request.job.task.engine.type  # spelled as registered when the job was read
        if wanted.lower() in {name.lower() for name in request.engines}:
            return YES
        return refuse(f"engine {wanted} is not installed {installed_list(request.engines)}")
