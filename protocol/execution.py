"""An execution: one attempt of a job on one node, with desired and observed state."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field, field_validator

from protocol.bookkeeping import NO_VERDICT, Verdict
from protocol.job import Job, SpecConfig
from protocol.resources import Resources
from protocol.states import ExecutionDesiredStateType, ExecutionStateType
from protocol.wire import WireModel


class ComputeState(WireModel):
    state_type: ExecutionStateType = Field(default=ExecutionStateType.NEW, alias="StateType")
    message: str = Field(default="", alias="Message")
    details: dict[str, str] = Field(default_factory=dict, alias="Details")


class DesiredState(WireModel):
    state_type: ExecutionDesiredStateType = Field(
        default=ExecutionDesiredStateType.PENDING, alias="StateType"
    )
    message: str = Field(default="", alias="Message")
    details: dict[str, str] = Field(default_factory=dict, alias="Details")


class RunCommandResult(WireModel):
    """What the task printed and how it exited (output truncated to a few KiB)."""

    stdout: str = Field(default="", alias="Stdout")
    stdout_truncated: bool = Field(default=False, alias="StdoutTruncated")
    stderr: str = Field(default="", alias="stderr")
    stderr_truncated: bool = Field(default=False, alias="StderrTruncated")
    exit_code: int = Field(default=0, alias="ExitCode")
    error_msg: str = Field(default="", alias="ErrorMsg")


class Execution(WireModel):
    id: str = Field(alias="ID")
    namespace: str = Field(default="default", alias="Namespace")
    eval_id: str = Field(default="", alias="EvalID")
    name: str = Field(default="", alias="Name")
    node_id: str = Field(alias="NodeID")
    job_id: str = Field(alias="JobID")
    job: Job | None = Field(default=None, alias="Job")
    allocated_resources: dict[str, Any] = Field(default_factory=dict, alias="AllocatedResources")
    desired_state: DesiredState = Field(default_factory=DesiredState, alias="DesiredState")
    compute_state: ComputeState = Field(default_factory=ComputeState, alias="ComputeState")
    published_result: SpecConfig | None = Field(default=None, alias="PublishedResult")
    run_output: RunCommandResult | None = Field(default=None, alias="RunOutput")
    previous_execution: str = Field(default="", alias="PreviousExecution")
    next_execution: str = Field(default="", alias="NextExecution")
    followup_eval_id: str = Field(default="", alias="FollowupEvalID")
    revision: int = Field(default=0, alias="Revision")
    create_time: int = Field(default=0, alias="CreateTime")
    modify_time: int = Field(default=0, alias="ModifyTime")
    # The requester's bookkeeping, kept in the store's columns: set by with_verdict, like
    # Job._queueing (not a field, not a pydantic private attribute).
    _verdict: ClassVar[Verdict] = NO_VERDICT

    @field_validator("allocated_resources", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def state(self) -> ExecutionStateType:
        return self.compute_state.state_type

    @property
    def verdict(self) -> Verdict:
        """What the requester concluded when it ended (see :mod:`protocol.bookkeeping`)."""
        return self._verdict

    def with_verdict(self, verdict: Verdict) -> Self:
        """A shallow copy of the execution with this verdict."""
        copied = self.model_copy()
        object.__setattr__(copied, "_verdict", verdict)  # copies keep it (__dict__)
        return copied

    def resources(self) -> Resources:
        """What the requester allocated for the (single) task."""
        tasks = self.allocated_resources.get("Tasks") or {}
        return Resources.model_validate(next(iter(tasks.values()), {}))
