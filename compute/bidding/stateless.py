"""``--job-selection-reject-stateless``: bid only on jobs that read input data, as Bacalhau's
flag of that name does."""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, refuse


class StatelessRule:
    name = "job-selection-reject-stateless"

    def check(self, request: BidRequest) -> BidDecision:
        if request.job.task.input_sources:
            return YES
        return refuse("this node does not take jobs without input data (stateless jobs)")
