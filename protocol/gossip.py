"""Gossip: a node announces its NodeInfo on start, on change and periodically, and sends
heartbeats in between; on a clean stop it says so with a ShutdownNotice."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from protocol.errors import TransportError
from protocol.messages import Heartbeat, Message, NodeInfoMessage, ShutdownNotice
from protocol.node import NodeInfo, NodeType

log = logging.getLogger("bacalao.gossip")


class Broadcaster(Protocol):
    def broadcast(self, message: Message, timeout_s: float | None = None) -> None: ...


# A ShutdownNotice is a courtesy (peers notice the silence anyway): a node told to stop
# while its broker is down waits this long for it, not the bus's whole publish timeout.
SHUTDOWN_NOTICE_TIMEOUT_S = 2.0


class Announcer:
    """Every ``heartbeat_interval_s`` a Heartbeat; every ``info_every`` beats, or as soon as
    :meth:`changed` is called, the full NodeInfo.

    What the node holds (``holding``) goes out once per interval: in every Heartbeat and
    periodic NodeInfo, and in a NodeInfo announcing a change only when a report is due (a
    busy node announces many changes a second and may never beat). The list grows with
    throughput (runs finished lately are on it), so sending it with every change made gossip
    the largest cost of a busy node and of its requester."""

    def __init__(
        self,
        bus: Broadcaster,
        info: Callable[[], NodeInfo],
        heartbeat_interval_s: float = 5.0,
        info_every: int = 3,
        min_gap_s: float = 0.1,
        holding: Callable[[], list[str]] | None = None,
        described: Callable[[], tuple[NodeInfo, list[str] | None]] | None = None,
    ) -> None:
        """``described``, when given, replaces ``info`` in announcements: the NodeInfo with
        the executions its AvailableCapacity left out, read together (``Using``)."""
        self._bus = bus
        self._info = info
        self._interval_s = heartbeat_interval_s
        self._info_every = max(1, info_every)
        self._min_gap_s = min_gap_s
        self._holding = holding
        self._described = described
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._requester_boots: dict[str, str] = {}
        # Read once: info() may be costly (a compute node checks its plugins), and heard()
        # runs on the bus thread.
        self._node_id = info().node_id
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._report_due_s = 0.0  # monotonic: when the holdings are next reported

    def start(self) -> None:
        self._announce()
        self._thread = threading.Thread(target=self._run, name="gossip", daemon=True)
        self._thread.start()

    def heard(self, other: NodeInfo) -> None:
        """A requester that is new, or restarted (a new boot), has an empty node table: tell
        it about this node now rather than at the next periodic announcement."""
        if other.node_type == NodeType.COMPUTE or other.node_id == self._node_id:
            return
        with self._lock:
            if self._requester_boots.get(other.node_id) == other.boot_id:
                return
            self._requester_boots[other.node_id] = other.boot_id
        self.changed()

    def changed(self) -> None:
        """Announce soon (changes within ``min_gap_s`` are folded into one announcement)."""
        self._changed.set()

    def close(self, reason: str = "shutting down") -> None:
        self._stopping.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        node_id = self._info().node_id
        notice = ShutdownNotice(node_id=node_id, reason=reason)
        self._broadcast(notice, SHUTDOWN_NOTICE_TIMEOUT_S)

    def _run(self) -> None:
        beats = 0
        while not self._stopping.is_set():
            if self._changed.wait(self._interval_s):
                if self._stopping.is_set():
                    return
                self._stopping.wait(self._min_gap_s)
                self._changed.clear()
                self._announce(report=time.monotonic() >= self._report_due_s)
                beats = 0
                continue
            beats += 1
            if beats % self._info_every == 0:
                self._announce()
            else:
                self._seq += 1
                held = self._held()
                node_id = self._info().node_id
                self._broadcast(Heartbeat(node_id=node_id, seq=self._seq, executions=held))

    def _announce(self, *, report: bool = True) -> None:
        """The NodeInfo; with the holdings when ``report`` (else None: "no news of them")."""
        self._seq += 1
        if self._described is not None:
            info, using = self._described()
        else:
            info, using = self._info(), None
        info = info.model_copy(update={"seq": self._seq})
        held = self._held() if report else None
        self._broadcast(NodeInfoMessage(info=info, executions=held, using=using))

    def _held(self) -> list[str] | None:
        """What the node holds now (None from a node that runs nothing); the next report is
        due an interval from now."""
        self._report_due_s = time.monotonic() + self._interval_s
        return self._holding() if self._holding is not None else None

    def _broadcast(self, message: Message, timeout_s: float | None = None) -> None:
        """Gossip is sent again every interval, so an announcement waits for a lost broker
        no longer than one interval (at least a second): never a stale heartbeat queued
        behind an outage."""
        try:
            self._bus.broadcast(
                message, max(self._interval_s, 1.0) if timeout_s is None else timeout_s
            )
        except TransportError as exc:
            log.warning("event=gossip_failed type=%s error=%r", type(message).__name__, str(exc))
