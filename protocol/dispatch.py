"""Routes envelopes to the roles a process plays: one bus, a requester and/or a compute node."""

from __future__ import annotations

import logging
from collections.abc import Callable

from protocol.envelope import Envelope

log = logging.getLogger("bacalao.dispatch")

Handler = Callable[[Envelope], None]

TO_COMPUTE = frozenset(
    {"AskForBid", "BidAccepted", "BidRejected", "CancelExecution", "ExecutionLogsRequest"}
)
TO_REQUESTER = frozenset(
    {"BidResult", "ExecutionStarted", "RunResult", "ComputeError", "ExecutionLogs"}
)
GOSSIP = frozenset({"NodeInfo", "Heartbeat", "ShutdownNotice"})


class Dispatcher:
    def __init__(self, requester: Handler | None = None, compute: Handler | None = None) -> None:
        self.requester = requester
        self.compute = compute
        self.gossip_listeners: list[Handler] = []  # every gossip message, whatever the roles

    def __call__(self, envelope: Envelope) -> None:
        if envelope.type in GOSSIP:
            for listener in self.gossip_listeners:
                listener(envelope)
        if envelope.type in TO_COMPUTE:
            target = self.compute
        elif envelope.type in TO_REQUESTER or envelope.type in GOSSIP:
            target = self.requester
        else:
            target = None
        if target is not None:
            target(envelope)
        elif envelope.type not in GOSSIP:
            log.warning("event=no_handler type=%s sender=%s", envelope.type, envelope.sender)
