"""What the orchestrator's worker thread is told: one small typed value per kind of news.

The bus thread and the API threads only put these on the orchestrator's queue; every change
of job and execution state follows from them on the worker thread, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.envelope import Envelope


@dataclass(frozen=True)
class Evaluate:
    """A job was submitted or stopped, or a probe answered about its bid: look at it."""

    job_id: str


@dataclass(frozen=True)
class Inbound:
    """A message from a compute node about one of this requester's executions."""

    envelope: Envelope


@dataclass(frozen=True)
class RoomNews:
    """A node announced its capacity: queued jobs may fit now. ``joined``: it is new or
    back, so jobs that found no able node at all may find one."""

    node_id: str
    joined: bool = False


@dataclass(frozen=True)
class NodeLeft:
    """A node said goodbye: what it ran is lost."""

    node_id: str


@dataclass(frozen=True)
class NodeRestarted:
    """A node came back with another boot ID: it forgot what it was running."""

    node_id: str


@dataclass(frozen=True)
class ExecutionEnded:
    """The store moved an execution to a terminal state off the worker thread."""

    execution_id: str


@dataclass(frozen=True)
class TakenOver:
    """On a shared store, this requester claimed the leases another let lapse: it follows
    these jobs from now on."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class StoppedHere:
    """A job stopped through this requester's API: its live executions are to be cancelled,
    whoever follows it (this requester, or none when its owner stopped renewing its lease)."""

    job_id: str


@dataclass(frozen=True)
class EndedElsewhere:
    """On a shared store, jobs this requester follows that another requester ended (a stop
    through its API): the executions this one asked for are its to cancel."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class Stop:
    """The orchestrator is closing."""


Event = (
    Evaluate
    | Inbound
    | RoomNews
    | NodeLeft
    | NodeRestarted
    | ExecutionEnded
    | TakenOver
    | StoppedHere
    | EndedElsewhere
    | Stop
)
