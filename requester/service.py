"""What the HTTP API needs from the orchestrator: the seam between the API and the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from protocol.job import Job
from protocol.node import NodeInfo, NodeState

if TYPE_CHECKING:
    from requester.store import Store


@dataclass(frozen=True)
class SubmitResult:
    job_id: str
    evaluation_id: str
    warnings: list[str] = field(default_factory=list)


class OrchestratorService(Protocol):
    @property
    def store(self) -> Store: ...

    def submit(self, job: Job) -> SubmitResult:
        """Validate (ValidationError naming the field), assign an ID, store, schedule."""
        ...

    def stop(self, job_id: str, reason: str) -> str:
        """Stop a job and cancel its executions; returns the evaluation ID.
        NotFoundError for an unknown job; ValidationError if it already ended."""
        ...

    def nodes(self) -> list[NodeState]:
        """Every node known from gossip, connected or not, requester included."""
        ...

    def self_info(self) -> NodeInfo:
        """This requester's own NodeInfo."""
        ...

    def debug(self) -> dict[str, Any]:
        """Counters: store transactions, passes, jobs waiting for room (JSON-ready)."""
        ...
