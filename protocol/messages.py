"""bprotocol messages. The wire ``type`` of each is its class name."""

from __future__ import annotations

from pydantic import Field, model_validator

from protocol.execution import Execution, RunCommandResult
from protocol.job import SpecConfig
from protocol.logs import MAX_CHUNK_BYTES, MAX_TAIL_LINES, LogChunk
from protocol.node import NodeInfo
from protocol.wire import WireModel


class Message(WireModel):
    """Base of every bprotocol payload."""


class AskForBid(Message):
    """Requester -> compute: would you run this execution? (carries the whole job)"""

    execution: Execution = Field(alias="Execution")
    wait_for_approval: bool = Field(default=True, alias="WaitForApproval")


class BidResult(Message):
    """Compute -> requester: yes (capacity reserved) or no, with the reason."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    accepted: bool = Field(alias="Accepted")
    reason: str = Field(default="", alias="Reason")
    busy: bool = Field(default=False, alias="Busy")
    # What refused, for counting: the node's bid rule ("labels", "network", ...), or
    # "capacity" when busy; "" for a bid. Free text from another node: bounded where counted.
    refused_by: str = Field(default="", alias="RefusedBy")


class BidAccepted(Message):
    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")


class BidRejected(Message):
    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    reason: str = Field(default="", alias="Reason")


class CancelExecution(Message):
    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    reason: str = Field(default="", alias="Reason")


class AdoptExecution(Message):
    """Requester -> compute: the requester that asked for this execution stopped following
    its job, and the sender took the job over (its lease lapsed to the sender, see
    requester/store/leases.py): from now on tell the sender of it. Answered with where the
    execution stands: ExecutionStarted while it runs, its RunResult or ComputeError again
    once it ended, AdoptionRefused when the node does not run it."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")


class AdoptionRefused(Message):
    """Compute -> requester: the answer to an AdoptExecution for an execution this node does
    not run (never asked, not accepted, or forgotten): it will not run here; ask again."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    reason: str = Field(default="", alias="Reason", max_length=1024)


class ExecutionStarted(Message):
    """Compute -> requester: the executor has started the task."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")


class RunResult(Message):
    """Compute -> requester: the task ran (any exit code) and its results are published."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    published_result: SpecConfig | None = Field(default=None, alias="PublishResult")
    run_output: RunCommandResult = Field(alias="RunCommandResult")
    # "sha256:...": what the run produced, for a job that asks for verification
    # (protocol/verification.py); "" otherwise.
    result_hash: str = Field(default="", alias="ResultHash")


class ComputeError(Message):
    """Compute -> requester: the execution could not run or finish."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    message: str = Field(alias="Message")
    retryable: bool = Field(default=False, alias="Retryable")


class ExecutionLogsRequest(Message):
    """Requester -> compute: send what the execution wrote past these byte offsets, at most
    ``MaxBytes``. ``StreamID`` names the requester's follow and ``Seq`` this ask of it; the
    answer echoes both. With ``Follow`` the node waits a moment for output when there is none
    yet; ``TailLines`` (first ask only) starts each stream at its last N lines instead."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    stream_id: str = Field(alias="StreamID", min_length=1, max_length=64)
    seq: int = Field(default=0, ge=0, alias="Seq")
    stdout_offset: int = Field(default=0, ge=0, alias="StdoutOffset")
    stderr_offset: int = Field(default=0, ge=0, alias="StderrOffset")
    max_bytes: int = Field(default=MAX_CHUNK_BYTES, ge=1, le=MAX_CHUNK_BYTES, alias="MaxBytes")
    follow: bool = Field(default=True, alias="Follow")
    tail_lines: int = Field(default=0, ge=0, le=MAX_TAIL_LINES, alias="TailLines")


class ExecutionLogs(Message):
    """Compute -> requester: the one answer to an ExecutionLogsRequest. ``Chunks``: at most
    one per stream, ``MAX_CHUNK_BYTES`` of data in all (none: nothing new yet). ``End``: no
    more will come, because the execution ended and all it wrote was sent (or, to an ask
    without ``Follow``, all it has written so far). ``Error``: why the node will not serve
    it (it does not hold the execution, or no longer has its output); ``End`` then too."""

    execution_id: str = Field(alias="ExecutionID")
    job_id: str = Field(alias="JobID")
    stream_id: str = Field(alias="StreamID", max_length=64)
    seq: int = Field(default=0, ge=0, alias="Seq")
    chunks: list[LogChunk] = Field(default_factory=list, alias="Chunks", max_length=2)
    end: bool = Field(default=False, alias="End")
    error: str = Field(default="", alias="Error", max_length=1024)

    @model_validator(mode="after")
    def _bounded(self) -> ExecutionLogs:
        streams = [chunk.stream for chunk in self.chunks]
        if len(set(streams)) != len(streams):
            raise ValueError("Chunks: at most one chunk per stream")
        size = sum(len(chunk.data) for chunk in self.chunks)
        if size > MAX_CHUNK_BYTES:
            raise ValueError(f"Chunks: {size} bytes of data, over the {MAX_CHUNK_BYTES} limit")
        return self


class NodeInfoMessage(Message):
    """``Executions`` as in :class:`Heartbeat`: a busy node announces NodeInfo more often
    than it beats, so a NodeInfo carries what it holds when a report is due (once per
    heartbeat interval), and None (no news of it) in between. ``Using``: see below."""

    info: NodeInfo = Field(alias="NodeInfo")
    executions: list[str] | None = Field(default=None, alias="Executions")
    # The executions whose resources AvailableCapacity leaves out, at the same moment: a
    # requester tells apart its own placements the node has counted from those it has not.
    using: list[str] | None = Field(default=None, alias="Using")


class Heartbeat(Message):
    """``Executions``: the IDs a compute node holds (reserved, running, or finished in the
    last moments); absent from nodes that run none. Lets a requester notice an execution
    whose messages were lost (e.g. with a broker that restarted empty)."""

    node_id: str = Field(alias="NodeID")
    seq: int = Field(alias="Seq")
    executions: list[str] | None = Field(default=None, alias="Executions")


class ShutdownNotice(Message):
    node_id: str = Field(alias="NodeID")
    reason: str = Field(default="", alias="Reason")


MESSAGE_TYPES: dict[str, type[Message]] = {
    "AskForBid": AskForBid,
    "BidResult": BidResult,
    "BidAccepted": BidAccepted,
    "BidRejected": BidRejected,
    "CancelExecution": CancelExecution,
    "AdoptExecution": AdoptExecution,
    "AdoptionRefused": AdoptionRefused,
    "ExecutionStarted": ExecutionStarted,
    "RunResult": RunResult,
    "ComputeError": ComputeError,
    "ExecutionLogsRequest": ExecutionLogsRequest,
    "ExecutionLogs": ExecutionLogs,
    "NodeInfo": NodeInfoMessage,
    "Heartbeat": Heartbeat,
    "ShutdownNotice": ShutdownNotice,
}
WIRE_NAMES: dict[type[Message], str] = {cls: name for name, cls in MESSAGE_TYPES.items()}
