"""A compute node's configuration, and the outbox it sends through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from compute.bidding.locality import DataLocality
from compute.bidding.selection import JobSelection
from compute.logs import LogServerConfig
from protocol.messages import Message
from protocol.resources import Resources


class Outbox(Protocol):
    def send(self, node_id: str, message: Message) -> None: ...

    def hold(self, node_id: str, message: Message, key: str, delay_s: float) -> None: ...

    def drop(self, key: str) -> bool: ...

    def release(self, key: str) -> None: ...


@dataclass(frozen=True)
class ComputeConfig:
    max_capacity: Resources
    max_job_resources: Resources | None = None
    # What a task that leaves a dimension of its Resources empty holds (the requester's
    # default too, so both sides count the same).
    default_job_resources: Resources = field(
        default_factory=lambda: Resources(cpu=0.1, memory=64 * 1024**2)
    )
    labels: dict[str, str] = field(default_factory=dict)
    reservation_ttl_s: float = 30.0
    default_execution_timeout_s: float = 1800.0
    max_execution_timeout_s: float = 0.0
    accept_networked_jobs: bool = False
    max_parallel_runs: int = 64
    data_locality: DataLocality = DataLocality.ANYWHERE
    finished_memory_s: float = 30.0
    bid_workers: int = 4
    installed_check_s: float = 10.0
    job_selection: JobSelection = field(default_factory=JobSelection)
    tamper_results: bool = False  # tests only: this node's results differ from all others'
    logs: LogServerConfig = field(default_factory=LogServerConfig)
