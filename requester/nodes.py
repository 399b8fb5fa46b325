"""The requester's view of the cluster, fed by gossip: who is there, and what they offer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from protocol.errors import NotFoundError, ValidationError
from protocol.ids import now_ns
from protocol.node import NodeConnection, NodeInfo, NodeState
from requester.plan import NodeReport
from requester.room import CapacityReport


@dataclass
class _Entry:
    info: NodeInfo
    last_seen: float
    connected: bool = True
    said_goodbye: bool = False
    report: NodeReport | None = None
    announced_at_ns: int = 0  # when its latest NodeInfo came in (wall clock, as job times)
    capacity: CapacityReport | None = None  # its latest AvailableCapacity with what it counted


class Announced(NamedTuple):
    """What a NodeInfo told the table."""

    fresh: bool  # a node new to the table, or back after it was disconnected
    restarted: bool  # another BootID: it forgot what it was running
    news: bool  # anything but its sequence number differs from its previous announcement


def _same_announcement(old: NodeInfo, new: NodeInfo) -> bool:
    return old.model_copy(update={"seq": new.seq}) == new


class NodeTable:
    """Thread-safe. A node that misses heartbeats for ``disconnect_after_s`` is disconnected."""

    def __init__(
        self, disconnect_after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._disconnect_after_s = disconnect_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: dict[str, _Entry] = {}

    def on_info(self, info: NodeInfo, using: list[str] | None = None) -> Announced:
        """Record an announcement, and say what was new in it.

        A node that restarted (another BootID) has forgotten what it was running. ``using``:
        the executions its AvailableCapacity left out (nodes that say so get a
        :class:`CapacityReport`). An idle node repeats itself every few heartbeats: that is
        no news (and its unchanged CapacityReport is kept, so rooms worked out from it are
        still good)."""
        with self._lock:
            entry = self._nodes.get(info.node_id)
            fresh = entry is None or not entry.connected
            restarted = entry is not None and entry.info.boot_id != info.boot_id
            # A NodeInfo says nothing of held executions: keep the last heartbeat's report,
            # unless the node restarted (its holdings went with the old process).
            report = entry.report if entry is not None and not restarted else None
            capacity = None
            if using is not None and info.compute_node_info is not None:
                available = info.compute_node_info.available_capacity
                capacity = CapacityReport(available, frozenset(using))
            news = (
                fresh
                or restarted
                or entry is None
                or capacity != entry.capacity
                or not _same_announcement(entry.info, info)
            )
            if not news and entry is not None:
                capacity = entry.capacity
            self._nodes[info.node_id] = _Entry(
                info=info,
                last_seen=self._clock(),
                report=report,
                announced_at_ns=now_ns(),
                capacity=capacity,
            )
            return Announced(fresh, restarted, news)

    def on_heartbeat(self, node_id: str, executions: list[str] | None = None) -> bool:
        """Refresh a node and keep what it says it holds; False when the node is unknown
        (its NodeInfo will follow)."""
        with self._lock:
            entry = self._nodes.get(node_id)
            if entry is None:
                return False
            entry.last_seen = self._clock()
            if executions is not None:
                entry.report = NodeReport(at_ns=now_ns(), executions=frozenset(executions))
            revived = not entry.connected
            entry.connected = True
            return not revived

    def on_shutdown(self, node_id: str) -> None:
        with self._lock:
            entry = self._nodes.get(node_id)
            if entry is not None:
                entry.connected = False
                entry.said_goodbye = True

    def sweep(self) -> list[str]:
        """Disconnect nodes whose heartbeats stopped; return the newly disconnected IDs."""
        now = self._clock()
        lost = []
        with self._lock:
            for node_id, entry in self._nodes.items():
                if entry.connected and now - entry.last_seen > self._disconnect_after_s:
                    entry.connected = False
                    lost.append(node_id)
        return lost

    def is_connected(self, node_id: str) -> bool:
        with self._lock:
            entry = self._nodes.get(node_id)
            return entry is not None and entry.connected

    def reports(self) -> dict[str, NodeReport]:
        """The latest holdings report of each connected node that sends them."""
        with self._lock:
            return {
                node_id: entry.report
                for node_id, entry in self._nodes.items()
                if entry.connected and entry.report is not None
            }

    def capacity_reports(self) -> dict[str, CapacityReport]:
        """The latest capacity report of each connected compute node that sends them."""
        with self._lock:
            return {
                node_id: entry.capacity
                for node_id, entry in self._nodes.items()
                if entry.connected and entry.capacity is not None
            }

    def announced(self) -> dict[str, int]:
        """When each connected node last announced itself (its capacity may have changed)."""
        with self._lock:
            return {
                node_id: entry.announced_at_ns
                for node_id, entry in self._nodes.items()
                if entry.connected
            }

    def away(self, within_s: float) -> list[NodeInfo]:
        """Nodes that went silent (no goodbye) in the last ``within_s``: they may come back,
        as after a broker outage or a network split."""
        now = self._clock()
        with self._lock:
            return [
                entry.info
                for entry in self._nodes.values()
                if not entry.connected
                and not entry.said_goodbye
                and now - entry.last_seen <= within_s
            ]

    def connected(self) -> list[NodeInfo]:
        with self._lock:
            return [entry.info for entry in self._nodes.values() if entry.connected]

    def any_compute_connected(self) -> bool:
        """Whether a compute node is connected: stops at the first (no list of them all)."""
        with self._lock:
            return any(e.connected and e.info.is_compute for e in self._nodes.values())

    def states(self) -> list[NodeState]:
        with self._lock:
            entries = list(self._nodes.values())
        return [self._state(entry) for entry in sorted(entries, key=lambda e: e.info.node_id)]

    def get(self, node_id: str) -> NodeState:
        with self._lock:
            matches = [e for key, e in self._nodes.items() if key.startswith(node_id)]
            exact = self._nodes.get(node_id)
        if exact is not None:
            return self._state(exact)
        if not matches:
            raise NotFoundError(f"node {node_id} not found")
        if len(matches) > 1:
            raise ValidationError("id", f"{node_id!r} matches {len(matches)} nodes")
        return self._state(matches[0])

    def _state(self, entry: _Entry) -> NodeState:
        age_ns = int((self._clock() - entry.last_seen) * 1e9)
        return NodeState(
            info=entry.info,
            connection=NodeConnection.CONNECTED if entry.connected else NodeConnection.DISCONNECTED,
            last_seen=now_ns() - age_ns,
        )
