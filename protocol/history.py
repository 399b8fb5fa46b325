"""A job's history in Bacalhau's JobHistory wire shape (what ``bacalhau-apiclient`` reads).

Job states travel as strings (``"Running"``), execution states as v1.4 integers, times as
RFC 3339 strings with nanoseconds. :func:`format_time_ns` and :func:`parse_time_ns` convert
between those strings and the Unix nanoseconds bacalao keeps everywhere else.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple

from pydantic import Field

from protocol.execution import Execution
from protocol.job import JobStateType
from protocol.states import ExecutionStateType
from protocol.wire import WireModel

TOPIC_SUBMISSION = "Submission"
TOPIC_JOB_STATE = "JobState"
TOPIC_EXECUTION = "Execution"
EXECUTION_CREATED = "Execution created"  # the comment of an execution's first entry

_NS_PER_S = 1_000_000_000
_RFC3339 = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})$"
)


class JobHistoryType(enum.StrEnum):
    UNDEFINED = "Undefined"
    JOB_LEVEL = "JobLevel"
    EXECUTION_LEVEL = "ExecutionLevel"


class JobStateChange(WireModel):
    previous: JobStateType = Field(alias="Previous")
    new: JobStateType = Field(alias="New")


class ExecutionStateChange(WireModel):
    previous: ExecutionStateType = Field(alias="Previous")
    new: ExecutionStateType = Field(alias="New")


class Event(WireModel):
    message: str = Field(default="", alias="Message")
    topic: str = Field(default="", alias="Topic")
    timestamp: str = Field(default="", alias="Timestamp")
    details: dict[str, str] = Field(default_factory=dict, alias="Details")


class JobHistory(WireModel):
    """One entry of a job's history: a job state change or an execution update."""

    type: JobHistoryType = Field(alias="Type")
    job_id: str = Field(alias="JobID")
    execution_id: str = Field(default="", alias="ExecutionID")
    node_id: str = Field(default="", alias="NodeID")
    job_state: JobStateChange | None = Field(default=None, alias="JobState")
    execution_state: ExecutionStateChange | None = Field(default=None, alias="ExecutionState")
    new_revision: int = Field(default=0, alias="NewRevision")
    comment: str = Field(default="", alias="Comment")
    time: str = Field(alias="Time")
    event: Event = Field(default_factory=Event, alias="Event")

    @property
    def time_ns(self) -> int:
        return parse_time_ns(self.time)


class HistoryRow(NamedTuple):
    """One history entry as the job store keeps it: its columns, and its JSON as the API
    shows it (the same :class:`JobHistory`, written without building the model: a job
    writes half a dozen of these, on the scheduler's own thread)."""

    job_id: str
    execution_id: str
    node_id: str
    type: JobHistoryType
    time_ns: int
    json: str

    def entry(self) -> JobHistory:
        return JobHistory.model_validate_json(self.json)


def job_row(
    job_id: str,
    previous: JobStateType,
    new: JobStateType,
    *,
    revision: int,
    time_ns: int,
    comment: str,
    topic: str = TOPIC_JOB_STATE,
    details: Mapping[str, str] | None = None,
) -> HistoryRow:
    """A JobLevel entry, as the row the store writes: the job went from ``previous`` to ``new``
    (which may be equal)."""
    time = format_time_ns(time_ns)
    body = {
        "Type": JobHistoryType.JOB_LEVEL.value,
        "JobID": job_id,
        "ExecutionID": "",
        "NodeID": "",
        "JobState": {"Previous": previous.value, "New": new.value},
        "ExecutionState": None,
        "NewRevision": revision,
        "Comment": comment,
        "Time": time,
        "Event": _event_body(comment, topic, time, details),
    }
    return HistoryRow(job_id, "", "", JobHistoryType.JOB_LEVEL, time_ns, _dumps(body))


def execution_row(
    execution: Execution, previous: ExecutionStateType, *, time_ns: int, comment: str
) -> HistoryRow:
    """An ExecutionLevel entry for ``execution`` as it is now, coming from ``previous``, as the row
    the store writes."""
    time = format_time_ns(time_ns)
    state = execution.compute_state.state_type
    details = {
        **execution.compute_state.details,
        "DesiredState": execution.desired_state.state_type.label,
    }
    body = {
        "Type": JobHistoryType.EXECUTION_LEVEL.value,
        "JobID": execution.job_id,
        "ExecutionID": execution.id,
        "NodeID": execution.node_id,
        "JobState": None,
        "ExecutionState": {"Previous": int(previous), "New": int(state)},
        "NewRevision": execution.revision,
        "Comment": comment,
        "Time": time,
        "Event": _event_body(comment or f"Execution {state.label}", TOPIC_EXECUTION, time, details),
    }
    return HistoryRow(
        execution.job_id,
        execution.id,
        execution.node_id,
        JobHistoryType.EXECUTION_LEVEL,
        time_ns,
        _dumps(body),
    )


def _event_body(
    message: str, topic: str, time: str, details: Mapping[str, str] | None
) -> dict[str, Any]:
    return {"Message": message, "Topic": topic, "Timestamp": time, "Details": dict(details or {})}


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def format_time_ns(time_ns: int) -> str:
    """Unix nanoseconds -> ``2024-05-01T12:00:00.123456789Z`` (Go's RFC3339Nano, UTC)."""
    seconds, nanos = divmod(time_ns, _NS_PER_S)
    base = _second(seconds)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{base}{fraction}Z"


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    """The whole-second part: the entries of a busy second share it."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time (any offset, up to nanoseconds) -> Unix nanoseconds."""
    match = _RFC3339.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 time")
    zone = match["zone"].upper()
    offset: timezone = UTC
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
    base = datetime.strptime(match["base"].replace("t", "T").replace(" ", "T"), "%Y-%m-%dT%H:%M:%S")
    seconds = int(base.replace(tzinfo=offset).timestamp())
    nanos = int((match["frac"] or "0").ljust(9, "0"))
    return seconds * _NS_PER_S + nanos
