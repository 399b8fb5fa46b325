"""The requester's queue of jobs waiting for room: highest priority first, then arrival order.

A job every able node of which is known to be full is not asked anywhere (the node would
only refuse it as busy); it waits here with its size and the nodes that could take it. When
room frees (a result comes in, a node announces itself) :meth:`Backlog.due` picks, in queue
order, the jobs that fit the room now known, taking each one's share off the room as it
goes, so one freed slot wakes one job, not the whole backlog.

Pure bookkeeping, used on the orchestrator's thread only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from protocol.resources import Resources
from requester.room import Room


@dataclass(frozen=True)
class Waiter:
    job_id: str
    needs: Resources
    eligible: frozenset[str] | None  # the nodes able to run it; None: any node


class Backlog:
    def __init__(self) -> None:
        self._queues: dict[int, dict[str, Waiter]] = {}  # priority -> job -> waiter (FIFO)
        self._priority_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._priority_of)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._priority_of

    def wait(
        self, job_id: str, priority: int, needs: Resources, eligible: frozenset[str] | None
    ) -> None:
        """Queue the job, or update what it waits for; a job already queued keeps its place."""
        if self._priority_of.get(job_id, priority) != priority:
            self.discard(job_id)
        self._priority_of[job_id] = priority
        self._queues.setdefault(priority, {})[job_id] = Waiter(job_id, needs, eligible)

    def discard(self, job_id: str) -> None:
        priority = self._priority_of.pop(job_id, None)
        if priority is None:
            return
        queue = self._queues[priority]
        del queue[job_id]
        if not queue:
            del self._queues[priority]

    def open_to_all(self) -> None:
        """A node joined: it may be able to run jobs no node could so far."""
        for queue in self._queues.values():
            for job_id, waiter in queue.items():
                if waiter.eligible is not None:
                    queue[job_id] = Waiter(job_id, waiter.needs, None)

    def due(self, rooms: Mapping[str, Room], limit: int, max_misses: int = 1024) -> list[str]:
        """Up to ``limit`` jobs, in queue order, that fit the room in ``rooms`` one after the
        other. Stops after ``max_misses`` jobs that fit nowhere, or when no node has CPU left:
        the work per call is bounded whatever the backlog."""
        left = dict(rooms)
        # A dict, not a set: nodes are tried in the order ``rooms`` gives them, so which
        # jobs wake does not depend on the hash seed.
        open_nodes = {node_id: None for node_id, room in left.items() if room.cpu > 1e-9}
        picked: list[str] = []
        misses = 0
        for priority in sorted(self._queues, reverse=True):
            for waiter in self._queues[priority].values():
                if len(picked) >= limit or misses >= max_misses or not open_nodes:
                    return picked
                node_id = _first_fit(waiter, left, open_nodes)
                if node_id is None:
                    misses += 1
                    continue
                picked.append(waiter.job_id)
                left[node_id] = room = left[node_id].plus(waiter.needs, -1)
                if room.cpu <= 1e-9:
                    del open_nodes[node_id]
        return picked


def _first_fit(
    waiter: Waiter, rooms: Mapping[str, Room], open_nodes: Mapping[str, None]
) -> str | None:
    nodes: Iterable[str] = open_nodes
    if waiter.eligible is not None and len(waiter.eligible) < len(open_nodes):
        nodes = sorted(node_id for node_id in waiter.eligible if node_id in open_nodes)
    for node_id in nodes:
        if (waiter.eligible is None or node_id in waiter.eligible) and rooms[node_id].fits(
            waiter.needs
        ):
            return node_id
    return None
