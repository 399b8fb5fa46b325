"""Bid only when the job's ExecutionTimeout is within this node's limit (0 = no limit)."""

from __future__ import annotations

from compute.bidding.base import YES, BidDecision, BidRequest, refuse
from protocol.job import MAX_TIMEOUT_S


class TimeoutRule:
    name = "timeout"

    def check(self, request: BidRequest) -> BidDecision:
        timeout_s = request.job.task.timeouts.execution_timeout
        if timeout_s > MAX_TIMEOUT_S:  # possible for a job stored before the bound existed
            return refuse(f"execution timeout {timeout_s}s is over the {MAX_TIMEOUT_S}s maximum")
        limit_s = request.max_execution_timeout_s
        if timeout_s <= 0 or limit_s <= 0 or timeout_s <= limit_s:
            return YES
        return refuse(
            f"execution timeout {timeout_s}s is longer than this node allows ({limit_s:g}s)"
        )
