"""``--job-selection-probe-exec CMD``: the operator's program decides, as in Bacalhau.

CMD gets ``{"Job": <the job>, "NodeID": <this node>}`` as JSON on its stdin and in
``BACALHAU_JOB_SELECTION_PROBE_DATA``; exit status 0 bids, as protocol/probes.py says. It has
``timeout_s`` to finish, after which it is killed and the job refused. Runs on a bid worker,
never on the bus thread.
"""

from __future__ import annotations

from compute.bidding.base import BidDecision, BidRequest, from_probe
from protocol.job import Job
from protocol.probes import DEFAULT_TIMEOUT_S, ExecProbe

PROBE_DATA_ENV = "BACALHAU_JOB_SELECTION_PROBE_DATA"


class ExecProbeRule:
    name = "job-selection-probe-exec"

    def __init__(self, command: str, node_id: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.command = command
        self._node_id = node_id
        self._probe = ExecProbe(command, "job selection probe", PROBE_DATA_ENV, timeout_s)

    def may_block(self, job: Job) -> bool:
        return True  # a command of the operator's, run for every job

    def check(self, request: BidRequest) -> BidDecision:
        return from_probe(self._probe.ask({"Job": request.job.to_wire(), "NodeID": self._node_id}))
