"""``--job-selection-probe-http URL``: the operator's HTTP service decides, as in Bacalhau.

The node POSTs ``{"Job": <the job>, "NodeID": <this node>}`` as JSON. A status other than 2xx
refuses (redirects are not followed); a JSON answer ``{"ShouldBid": bool, "Reason": str}``
decides (a ShouldBid that is not a boolean refuses); any other 2xx bids. A
timeout or a connection error refuses, saying so: a probe that cannot answer never lets a job
through. Runs on a bid worker, never on the bus thread.
"""

from __future__ import annotations

from typing import Any

import httpx

from compute.bidding.base import YES, BidDecision, BidRequest, refuse
from protocol.job import Job

DEFAULT_TIMEOUT_S = 10.0


def answer_decision(body: Any, who: str) -> BidDecision | None:
    """``{"ShouldBid": bool, "Reason": str}`` (keys in any case) as a decision; None when
    ``body`` is not such an answer."""
    if not isinstance(body, dict):
        return None
    lowered = {str(key).lower(): value for key, value in body.items()}
    if "shouldbid" not in lowered:
        return None
    should_bid = lowered["shouldbid"]
    if not isinstance(should_bid, bool):  # "false" as a string must not read as a yes
        return refuse(f"{who} answered ShouldBid={should_bid!r}, not true or false")
    reason = str(lowered.get("reason") or "")
    if should_bid:
        return BidDecision(True, reason)
    return refuse(f"{who} said no: {reason}" if reason else f"{who} said no")


class HTTPProbeRule:
    name = "job-selection-probe-http"

    def __init__(
        self,
        url: str,
        node_id: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._node_id = node_id
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    def may_block(self, job: Job) -> bool:
        return True  # a request to the operator's endpoint, for every job

    def check(self, request: BidRequest) -> BidDecision:
        who = f"job selection probe {self.url}"
        payload = {"Job": request.job.to_wire(), "NodeID": self._node_id}
        try:
            response = self._client.post(self.url, json=payload)
        except httpx.TimeoutException:
            return refuse(f"{who} did not answer in time")
        except httpx.HTTPError as exc:
            return refuse(f"{who} failed: {type(exc).__name__}: {exc}")
        if not response.is_success:  # 3xx too: a redirect is no answer
            return refuse(f"{who} answered {response.status_code} {response.reason_phrase}")
        try:
            body = response.json()
        except ValueError:
            return YES
        return answer_decision(body, who) or YES

    def close(self) -> None:
        self._client.close()
