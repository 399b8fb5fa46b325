"""Bid only when the job's publisher is installed here."""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, installed_list, refuse


class PublisherRule:
    name = "publisher"

    def check(self, request: BidRequest) -> BidDecision:
        wanted = request.job.task.publisher.type  # spelled as registered when the job was read
        if wanted.lower() in {name.lower() for name in request.publishers}:
            return YES
        return refuse(f"publisher {wanted} is not installed {installed_list(request.publishers)}")
