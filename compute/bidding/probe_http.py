"""``--job-selection-probe-http URL``: the operator's HTTP service decides, as in Bacalhau.

The node POSTs ``{"Job": <the job>, "NodeID": <this node>}`` as JSON; the answer is read as
protocol/probes.py says, with ``ShouldBid`` as its key. A probe that cannot answer refuses.
Runs on a bid worker, never on the bus thread.
"""

from __future__ import annotations

import httpx

from compute.bidding.base import BidDecision, BidRequest, from_probe
from protocol.job import Job
from protocol.probes import DEFAULT_TIMEOUT_S, HTTPProbe


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
        self._probe = HTTPProbe(url, "job selection probe", "ShouldBid", timeout_s, transport)

    def may_block(self, job: Job) -> bool:
        return True  # a request to the operator's endpoint, for every job

    def check(self, request: BidRequest) -> BidDecision:
        return from_probe(self._probe.ask({"Job": request.job.to_wire(), "NodeID": self._node_id}))

    def close(self) -> None:
        self._probe.close()
