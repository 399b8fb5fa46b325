"""Bid only when the job's engine is installed here."""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, installed_list, refuse
from protocol.specs import ENGINES


class EngineRule:
    name = "engine"

    def check(self, request: BidRequest) -> BidDecision:
        wanted = request.job.task.engine.type
        canonical = ENGINES.spelled(wanted).lower()
        installed = {ENGINES.spelled(name).lower() for name in request.engines}
        if canonical in installed:
            return YES
        return refuse(f"engine {wanted} is not installed {installed_list(request.engines)}")
