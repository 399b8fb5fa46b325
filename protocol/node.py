"""NodeInfo: what a node announces about itself over gossip."""

from __future__ import annotations

import enum

from pydantic import Field

from protocol import __version__
from protocol.resources import Resources
from protocol.wire import WireModel


class NodeType(enum.StrEnum):
    REQUESTER = "Requester"
    COMPUTE = "Compute"
    HYBRID = "Hybrid"


class ComputeNodeInfo(WireModel):
    execution_engines: list[str] = Field(default_factory=list, alias="ExecutionEngines")
    publishers: list[str] = Field(default_factory=list, alias="Publishers")
    storage_sources: list[str] = Field(default_factory=list, alias="StorageSources")
    max_capacity: Resources = Field(default_factory=Resources, alias="MaxCapacity")
    queue_capacity: Resources = Field(default_factory=Resources, alias="QueueCapacity")
    available_capacity: Resources = Field(default_factory=Resources, alias="AvailableCapacity")
    max_job_requirements: Resources = Field(default_factory=Resources, alias="MaxJobRequirements")
    running_executions: int = Field(default=0, alias="RunningExecutions")
    enqueued_executions: int = Field(default=0, alias="EnqueuedExecutions")


class BuildVersionInfo(WireModel):
    major: str = Field(default="0", alias="Major")
    minor: str = Field(default="1", alias="Minor")
    git_version: str = Field(default=f"v{__version__}", alias="GitVersion")
    git_commit: str = Field(default="", alias="GitCommit")
    build_date: str = Field(default="", alias="BuildDate")
    goos: str = Field(default="linux", alias="GOOS")
    goarch: str = Field(default="", alias="GOARCH")


class NodeInfo(WireModel):
    node_id: str = Field(alias="NodeID")
    node_type: NodeType = Field(default=NodeType.COMPUTE, alias="NodeType")
    labels: dict[str, str] = Field(default_factory=dict, alias="Labels")
    compute_node_info: ComputeNodeInfo | None = Field(default=None, alias="ComputeNodeInfo")
    bacalhau_version: BuildVersionInfo = Field(
        default_factory=BuildVersionInfo, alias="BacalhauVersion"
    )
    transport: str = Field(default="", alias="Transport")
    peer_address: str = Field(default="", alias="PeerAddress")
    seq: int = Field(default=0, alias="Seq")
    boot_id: str = Field(default="", alias="BootID")

    @property
    def is_compute(self) -> bool:
        return self.compute_node_info is not None


class NodeConnection(enum.StrEnum):
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


class NodeReputation(WireModel):
    """How the node's executions ended, as the requester counts them (decayed over time):
    ``Score`` is (completed + 1) / (completed + failed + 2), 0.5 with no history."""

    score: float = Field(alias="Score")
    completed: float = Field(default=0.0, alias="Completed")
    failed: float = Field(default=0.0, alias="Failed")


class NodeState(WireModel):
    """A node as the requester sees it: what it announced, whether it is still there, and
    (a bacalao addition) its reputation."""

    info: NodeInfo = Field(alias="Info")
    membership: str = Field(default="APPROVED", alias="Membership")
    connection: NodeConnection = Field(default=NodeConnection.CONNECTED, alias="Connection")
    last_seen: int = Field(default=0, alias="LastSeen")
    reputation: NodeReputation | None = Field(default=None, alias="Reputation")
