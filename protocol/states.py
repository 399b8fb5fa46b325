"""Lifecycles of jobs and executions: one enum each, one transition table each.

An invalid transition raises :class:`StateTransitionError`; it is never a silent overwrite.
Execution states serialize as integers in Bacalhau v1.4 numbering (what
``bacalhau-apiclient`` 1.4.1 expects); Running and Publishing, which v1.4 lacks, follow on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from protocol.errors import StateTransitionError
from protocol.job import JobStateType


class ExecutionStateType(enum.IntEnum):
    UNDEFINED = 0
    NEW = 1
    ASK_FOR_BID = 2
    ASK_FOR_BID_ACCEPTED = 3
    ASK_FOR_BID_REJECTED = 4
    BID_ACCEPTED = 5
    BID_REJECTED = 6
    COMPLETED = 7
    FAILED = 8
    CANCELLED = 9
    RUNNING = 10
    PUBLISHING = 11

    @property
    def label(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    @property
    def terminal(self) -> bool:
        return self in _EXECUTION_TERMINAL

    @property
    def active(self) -> bool:
        """Accepted and not yet finished: it holds (or will hold) the node's capacity."""
        return self in (
            ExecutionStateType.BID_ACCEPTED,
            ExecutionStateType.RUNNING,
            ExecutionStateType.PUBLISHING,
        )


class ExecutionDesiredStateType(enum.IntEnum):
    PENDING = 0
    RUNNING = 1
    STOPPED = 2

    @property
    def label(self) -> str:
        return self.name.capitalize()


_E = ExecutionStateType
_EXECUTION_TERMINAL = frozenset(
    {_E.ASK_FOR_BID_REJECTED, _E.BID_REJECTED, _E.COMPLETED, _E.FAILED, _E.CANCELLED}
)
EXECUTION_TRANSITIONS: Mapping[ExecutionStateType, frozenset[ExecutionStateType]] = {
    _E.UNDEFINED: frozenset({_E.NEW}),
    _E.NEW: frozenset({_E.ASK_FOR_BID, _E.CANCELLED, _E.FAILED}),
    # AskForBid -> BidAccepted / Running: a node asked to start at once (WaitForApproval
    # false) bid, or answered that it started.
    _E.ASK_FOR_BID: frozenset(
        {
            _E.ASK_FOR_BID_ACCEPTED,
            _E.ASK_FOR_BID_REJECTED,
            _E.BID_ACCEPTED,
            _E.RUNNING,
            _E.CANCELLED,
            _E.FAILED,
        }
    ),
    _E.ASK_FOR_BID_ACCEPTED: frozenset({_E.BID_ACCEPTED, _E.BID_REJECTED, _E.CANCELLED, _E.FAILED}),
    _E.BID_ACCEPTED: frozenset({_E.RUNNING, _E.PUBLISHING, _E.COMPLETED, _E.FAILED, _E.CANCELLED}),
    _E.RUNNING: frozenset({_E.PUBLISHING, _E.COMPLETED, _E.FAILED, _E.CANCELLED}),
    _E.PUBLISHING: frozenset({_E.COMPLETED, _E.FAILED, _E.CANCELLED}),
    **{state: frozenset() for state in _EXECUTION_TERMINAL},
}

_J = JobStateType
JOB_TRANSITIONS: Mapping[JobStateType, frozenset[JobStateType]] = {
    _J.UNDEFINED: frozenset({_J.PENDING}),
    _J.PENDING: frozenset({_J.QUEUED, _J.RUNNING, _J.COMPLETED, _J.FAILED, _J.STOPPED}),
    _J.QUEUED: frozenset({_J.QUEUED, _J.RUNNING, _J.COMPLETED, _J.FAILED, _J.STOPPED}),
    _J.RUNNING: frozenset({_J.QUEUED, _J.COMPLETED, _J.FAILED, _J.STOPPED}),
    _J.COMPLETED: frozenset(),
    _J.FAILED: frozenset(),
    _J.STOPPED: frozenset(),
}


def check_execution_transition(old: ExecutionStateType, new: ExecutionStateType) -> None:
    if new not in EXECUTION_TRANSITIONS[old]:
        raise StateTransitionError(f"execution cannot go from {old.label} to {new.label}")


def check_job_transition(old: JobStateType, new: JobStateType) -> None:
    if new not in JOB_TRANSITIONS[old]:
        raise StateTransitionError(f"job cannot go from {old.value} to {new.value}")
