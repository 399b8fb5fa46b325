from __future__ import annotations

import itertools

import pytest

from protocol.errors import StateTransitionError
from protocol.job import JobStateType as J
from protocol.states import (
    EXECUTION_TRANSITIONS,
    check_execution_transition,
    check_job_transition,
)
from protocol.states import (
    ExecutionStateType as S,
)


def test_execution_numbering_matches_bacalhau_v1_4() -> None:
    assert list(range(10)) == [
        S.UNDEFINED,
        S.NEW,
        S.ASK_FOR_BID,
        S.ASK_FOR_BID_ACCEPTED,
        S.ASK_FOR_BID_REJECTED,
        S.BID_ACCEPTED,
        S.BID_REJECTED,
        S.COMPLETED,
        S.FAILED,
        S.CANCELLED,
    ]


def test_happy_path_is_allowed() -> None:
    path = [
        S.NEW,
        S.ASK_FOR_BID,
        S.ASK_FOR_BID_ACCEPTED,
        S.BID_ACCEPTED,
        S.RUNNING,
        S.PUBLISHING,
        S.COMPLETED,
    ]
    for old, new in itertools.pairwise(path):
        check_execution_transition(old, new)


@pytest.mark.parametrize("terminal", [s for s in S if s.terminal])
def test_terminal_execution_states_go_nowhere(terminal: S) -> None:
    assert EXECUTION_TRANSITIONS[terminal] == frozenset()
    with pytest.raises(StateTransitionError, match=terminal.label):
        check_execution_transition(terminal, S.RUNNING)


def test_skipping_the_accept_is_refused() -> None:
    """A bid waiting for approval cannot run before the requester accepts it; an ask that
    needed none (a direct placement) may be answered by the run's start."""
    with pytest.raises(StateTransitionError, match="from AskForBidAccepted to Running"):
        check_execution_transition(S.ASK_FOR_BID_ACCEPTED, S.RUNNING)
    check_execution_transition(S.ASK_FOR_BID, S.RUNNING)


def test_job_transitions() -> None:
    check_job_transition(J.PENDING, J.RUNNING)
    check_job_transition(J.QUEUED, J.QUEUED)
    check_job_transition(J.RUNNING, J.COMPLETED)
    for terminal in (J.COMPLETED, J.FAILED, J.STOPPED):
        with pytest.raises(StateTransitionError):
            check_job_transition(terminal, J.RUNNING)
