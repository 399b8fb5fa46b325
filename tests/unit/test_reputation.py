"""A node's reputation: how its executions ended, decayed, kept in the job store, ranked by."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from protocol.bookkeeping import Verdict
from protocol.execution import ComputeState, Execution
from protocol.states import ExecutionStateType as S
from requester.reputation import (
    HALF_LIFE_S,
    NO_HISTORY,
    Outcome,
    Reputation,
    Reputations,
    outcome_of,
)
from requester.selection import select
from requester.store import JobStore
from tests.unit.test_selection import NEEDS, job, node

HOUR_NS = int(HALF_LIFE_S * 1e9)


def ended(state: S, node_id: str = "n-1", verdict: Verdict | None = None) -> Execution:
    execution = Execution(
        id=f"e-{node_id}-{state.label}",
        node_id=node_id,
        job_id="j-1",
        compute_state=ComputeState(state_type=state),
    )
    return execution.with_verdict(verdict) if verdict else execution


@pytest.mark.parametrize(
    ("execution", "outcome"),
    [
        (ended(S.COMPLETED), Outcome.COMPLETED),
        (ended(S.FAILED, verdict=Verdict(retryable=True)), Outcome.FAILED),  # the node's doing
        (ended(S.FAILED, verdict=Verdict(retryable=True, never_ran=True)), Outcome.FAILED),
        (ended(S.FAILED), None),  # the task's own exit code: it would fail anywhere
        (ended(S.CANCELLED), None),
        (ended(S.ASK_FOR_BID_REJECTED, verdict=Verdict(busy=True)), None),  # a node's right
        (ended(S.BID_REJECTED), None),
    ],
    ids=str,
)
def test_what_an_ended_execution_says_of_its_node(
    execution: Execution, outcome: Outcome | None
) -> None:
    assert outcome_of(execution) is outcome


def test_the_score_rises_with_completions_falls_with_failures_and_decays_to_neutral() -> None:
    assert NO_HISTORY.score == 0.5
    good = NO_HISTORY.recorded(Outcome.COMPLETED, 10).recorded(Outcome.COMPLETED, 10)
    assert good.score == pytest.approx(3 / 4)
    bad = NO_HISTORY.recorded(Outcome.FAILED, 10)
    assert bad.score == pytest.approx(1 / 3)
    later = bad.decayed(10 + HOUR_NS)  # one half-life on
    assert later.failed == pytest.approx(0.5)
    assert bad.score < later.score < 0.5
    assert bad.decayed(10 + 50 * HOUR_NS).score == pytest.approx(0.5, abs=1e-6)
    # an old failure weighs less than a new completion
    mixed = bad.recorded(Outcome.COMPLETED, 10 + HOUR_NS)
    assert (mixed.completed, mixed.failed) == pytest.approx((1.0, 0.5))


def test_reputations_are_kept_in_the_store_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    clock = iter(range(1, 100))
    with JobStore(path) as store:
        reputations = Reputations(store.reputations(), store.change_reputation, lambda: next(clock))
        store.on_reputation(reputations.saved)
        reputations.record(ended(S.COMPLETED, "good"))
        reputations.record(ended(S.FAILED, "bad", Verdict(retryable=True)))
        reputations.record(ended(S.FAILED, "task", None))  # not the node's doing
        assert set(reputations.scores) == {"good", "bad"}
    with JobStore(path) as reopened:
        loaded = reopened.reputations()
    assert loaded["good"] == Reputation(completed=1.0, failed=0.0, updated_ns=1)
    assert loaded["bad"] == Reputation(completed=0.0, failed=1.0, updated_ns=2)
    assert "task" not in loaded


def test_a_node_that_loses_executions_ranks_after_an_equal_one_that_does_not() -> None:
    nodes = [node("flaky"), node("steady")]
    scores = {"flaky": NO_HISTORY.recorded(Outcome.FAILED, 1).score}
    for seed in range(20):  # whatever the random share
        selection = select(job(), nodes, {}, random.Random(seed), NEEDS, reputation=scores)
        assert [n.node_id for n in selection.ranked] == ["steady", "flaky"]
    flaky = select(job(), nodes, {}, random.Random(1), NEEDS, reputation=scores).ranks["flaky"]
    assert flaky.scores["reputation"] == pytest.approx((1 / 3 - 0.5) * 8)
