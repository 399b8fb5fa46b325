"""How much room each compute node has now, as this requester can tell: its last report, and
what this requester placed or saw end since.

A compute node announces its AvailableCapacity with the executions it counted in it
(``Using``). Between two announcements the requester keeps a ledger of its own executions
per node: one placed but not yet counted by the node takes room, one that ended (its result
came, the node released it before replying) but is still counted gives it back. So the
requester never asks a node it knows is full, and learns of freed room as soon as a result
arrives, without waiting for the node's next announcement. Other requesters' placements show
up in the reports; until then a node may still refuse as busy, and capacity stays enforced
on the node.

Used on the orchestrator's thread only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from protocol.resources import Resources


@dataclass(frozen=True)
class CapacityReport:
    """A node's AvailableCapacity and the executions it had counted in it."""

    available: Resources
    using: frozenset[str]


@dataclass(frozen=True)
class Room:
    """Free resources on a node; may go below 0 when a node is over-estimated full."""

    cpu: float = 0.0
    memory: int = 0
    disk: int = 0
    gpu: int = 0

    @classmethod
    def of(cls, resources: Resources) -> Room:
        return cls(resources.cpu, resources.memory, resources.disk, resources.gpu)

    def plus(self, needs: Resources, sign: int = 1) -> Room:
        return Room(
            self.cpu + sign * needs.cpu,
            self.memory + sign * needs.memory,
            self.disk + sign * needs.disk,
            self.gpu + sign * needs.gpu,
        )

    def fits(self, needs: Resources) -> bool:
        """``needs`` fits here in every dimension it asks for."""
        return (
            (not needs.cpu or needs.cpu <= self.cpu + 1e-9)
            and (not needs.memory or needs.memory <= self.memory)
            and (not needs.disk or needs.disk <= self.disk)
            and (not needs.gpu or needs.gpu <= self.gpu)
        )


class Ledger:
    """This requester's executions per node: live ones, and ended ones a report may count."""

    def __init__(self) -> None:
        self._live: dict[str, dict[str, Resources]] = {}
        self._ended: dict[str, dict[str, Resources]] = {}
        self._node_of: dict[str, str] = {}
        # node -> (the report it was worked out from, the room): kept until either changes
        self._cache: dict[str, tuple[CapacityReport, Room]] = {}

    def placed(self, node_id: str, execution_id: str, needs: Resources) -> None:
        self._live.setdefault(node_id, {})[execution_id] = needs
        self._node_of[execution_id] = node_id
        self._cache.pop(node_id, None)

    def ended(self, execution_id: str) -> None:
        node_id = self._node_of.pop(execution_id, None)
        if node_id is None:
            return
        needs = self._live.get(node_id, {}).pop(execution_id, None)
        if needs is not None:
            self._ended.setdefault(node_id, {})[execution_id] = needs
        self._cache.pop(node_id, None)

    def forget_node(self, node_id: str) -> None:
        self._cache.pop(node_id, None)
        for execution_id in self._live.pop(node_id, {}):
            self._node_of.pop(execution_id, None)
        self._ended.pop(node_id, None)

    def live_count(self) -> int:
        return len(self._node_of)

    def room(self, node_id: str, report: CapacityReport) -> Room:
        """The node's room now: its report, less what was placed there since, plus what ended
        there since. Ended executions the report no longer counts are forgotten."""
        cached = self._cache.get(node_id)
        if cached is not None and cached[0] is report:
            return cached[1]
        room = Room.of(report.available)
        for execution_id, needs in self._live.get(node_id, {}).items():
            if execution_id not in report.using:
                room = room.plus(needs, -1)
        ended = self._ended.get(node_id)
        if ended:
            for execution_id in [e for e in ended if e not in report.using]:
                del ended[execution_id]
            for needs in ended.values():
                room = room.plus(needs)
        self._cache[node_id] = (report, room)
        return room

    def rooms(self, reports: Mapping[str, CapacityReport]) -> dict[str, Room]:
        return {node_id: self.room(node_id, report) for node_id, report in reports.items()}
