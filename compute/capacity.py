"""Compute-side capacity: reservations made when bidding, allocations once accepted.

A positive bid reserves the job's resources for ``ttl_s`` seconds; BidAccepted commits the
reservation into an allocation that holds until the execution ends and is released. Expired
reservations stop counting at once (so they never block a new bid) and are handed to the
caller by :meth:`CapacityTracker.expire`. The invariant, kept under one lock: reserved plus
allocated never exceeds the maximum in any dimension; a job needing 0 of a dimension always
fits that dimension.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from protocol.resources import Resources
from protocol.units import format_bytes, format_cpu

_CPU_EPSILON = 1e-9


@dataclass(frozen=True)
class CapacitySnapshot:
    """A consistent view of a tracker at one instant."""

    max_capacity: Resources
    reserved: Resources
    allocated: Resources
    available: Resources
    reserved_count: int
    running_count: int
    holders: frozenset[str] = frozenset()  # executions counted in reserved or allocated


@dataclass(frozen=True)
class _Reservation:
    resources: Resources
    expires_at_s: float


def job_resources(task_resources: Resources, defaults: Resources) -> Resources:
    """What a job holds on this node: its own asks, with the node's defaults where it left 0."""
    return task_resources.with_defaults(defaults)


def execution_needs(asked: Resources, allocated: Resources, defaults: Resources) -> Resources:
    """What one execution holds on this node, worked out by the node itself.

    ``asked`` is the task's own Resources, ``allocated`` the requester's AllocatedResources
    (all 0 when it sent none). The node's figure is the task's asks with its ``defaults``
    where the task left 0, raised to the requester's allocation in any dimension where that
    is larger: a requester that allocated more has promised the task more (its own defaults),
    but a missing, stale or too small allocation never lets a job take less than it asks for.
    """
    own = job_resources(asked, defaults)
    return Resources(
        cpu=max(own.cpu, allocated.cpu),
        memory=max(own.memory, allocated.memory),
        disk=max(own.disk, allocated.disk),
        gpu=max(own.gpu, allocated.gpu),
    )


def total(amounts: Iterable[Resources]) -> Resources:
    """The sum of ``amounts``, adding plain numbers: one model built, not one per amount (a
    busy node sums every held execution on each ask)."""
    cpu = 0.0
    memory = disk = gpu = 0
    for amount in amounts:
        cpu += amount.cpu
        memory += amount.memory
        disk += amount.disk
        gpu += amount.gpu
    return Resources(cpu=round(cpu, 6), memory=memory, disk=disk, gpu=gpu)


def shortfall(needed: Resources, held: Resources, maximum: Resources) -> list[str]:
    """The dimensions where ``needed`` does not fit beside ``held`` within ``maximum``."""
    free = maximum - held
    problems = []
    if needed.cpu and held.cpu + needed.cpu > maximum.cpu + _CPU_EPSILON:
        problems.append(f"cpu {format_cpu(needed.cpu)} > {format_cpu(free.cpu)} available")
    if needed.memory and held.memory + needed.memory > maximum.memory:
        problems.append(
            f"memory {format_bytes(needed.memory)} > {format_bytes(free.memory)} available"
        )
    if needed.disk and held.disk + needed.disk > maximum.disk:
        problems.append(f"disk {format_bytes(needed.disk)} > {format_bytes(free.disk)} available")
    if needed.gpu and held.gpu + needed.gpu > maximum.gpu:
        problems.append(f"gpu {needed.gpu} > {free.gpu} available")
    return problems


class CapacityTracker:
    """Thread-safe reservations and allocations against a node's maximum capacity."""

    def __init__(
        self, max_capacity: Resources, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._reservations: dict[str, _Reservation] = {}
        self._allocations: dict[str, Resources] = {}

    @property
    def max_capacity(self) -> Resources:
        return self._max

    def try_reserve(self, execution_id: str, resources: Resources, ttl_s: float) -> str | None:
        """Reserve ``resources`` for ``ttl_s`` seconds: None when reserved, else why not.

        Idempotent: an execution that already holds a live reservation or an allocation keeps
        it (with its original resources and expiry) and the answer is None.
        """
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        with self._lock:
            now_s = self._clock()
            if execution_id in self._allocations or self._live(execution_id, now_s):
                return None
            self._reservations.pop(execution_id, None)
            problems = shortfall(resources, self._held(now_s), self._max)
            if problems:
                return f"not enough capacity: {', '.join(problems)}"
            self._reservations[execution_id] = _Reservation(resources, now_s + ttl_s)
            return None

    def commit(self, execution_id: str) -> bool:
        """Turn a live reservation into an allocation that no longer expires.

        True when the execution now holds an allocation (also when it already did); False
        when its reservation is unknown or expired, in which case it is dropped and the caller
        may :meth:`try_reserve` again.
        """
        with self._lock:
            if execution_id in self._allocations:
                return True
            if not self._live(execution_id, self._clock()):
                self._reservations.pop(execution_id, None)
                return False
            reservation = self._reservations.pop(execution_id)
            self._allocations[execution_id] = reservation.resources
            return True

    def release(self, execution_id: str) -> bool:
        """Free whatever ``execution_id`` holds; False when it held nothing."""
        with self._lock:
            allocation = self._allocations.pop(execution_id, None)
            reservation = self._reservations.pop(execution_id, None)
            return allocation is not None or reservation is not None

    def expire(self) -> list[str]:
        """Drop the reservations whose ttl has passed and return their execution IDs."""
        with self._lock:
            now_s = self._clock()
            expired = [
                execution_id
                for execution_id, reservation in self._reservations.items()
                if reservation.expires_at_s <= now_s
            ]
            for execution_id in expired:
                del self._reservations[execution_id]
            return expired

    def available(self) -> Resources:
        return self.snapshot().available

    def allocated(self) -> Resources:
        """Resources held by committed (accepted, running) executions."""
        return self.snapshot().allocated

    def reserved(self) -> Resources:
        """Resources held by live reservations (bids not yet accepted)."""
        return self.snapshot().reserved

    @property
    def reserved_count(self) -> int:
        return self.snapshot().reserved_count

    @property
    def running_count(self) -> int:
        return self.snapshot().running_count

    def snapshot(self) -> CapacitySnapshot:
        with self._lock:
            now_s = self._clock()
            held = {k: r for k, r in self._reservations.items() if r.expires_at_s > now_s}
            live = [r.resources for r in held.values()]
            reserved = total(live)
            allocated = total(self._allocations.values())
            return CapacitySnapshot(
                holders=frozenset(held) | frozenset(self._allocations),
                max_capacity=self._max,
                reserved=reserved,
                allocated=allocated,
                available=self._max - (reserved + allocated),
                reserved_count=len(live),
                running_count=len(self._allocations),
            )

    def _live(self, execution_id: str, now_s: float) -> bool:
        reservation = self._reservations.get(execution_id)
        return reservation is not None and reservation.expires_at_s > now_s

    def _held(self, now_s: float) -> Resources:
        live = [r.resources for r in self._reservations.values() if r.expires_at_s > now_s]
        live.extend(self._allocations.values())
        return total(live)
