"""Bid only when the job's publisher is installed here."""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, installed_list, refuse
from protocol.specs import PUBLISHERS


class PublisherRule:
    name = "publisher"

    def check(self, request: BidRequest) -> BidDecision:
        wanted = request.job.task.publisher.type
        canonical = PUBLISHERS.spelled(wanted).lower()
        installed = {PUBLISHERS.spelled(name).lower() for name in request.publishers}
        if canonical in installed:
            return YES
        return refuse(f"publisher {wanted} is not installed {installed_list(request.publishers)}")
