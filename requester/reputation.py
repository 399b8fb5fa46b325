"""Each node's reputation, from how its executions ended: decayed counts, one score.

A completed execution counts for the node; one that failed for a reason of the node's (it
disconnected, restarted, lost the execution, did not answer an ask in time, or reported a
retryable error) counts against it, and so does a result that lost a verified job's vote
(:mod:`requester.verifier`). A task that failed by itself (its exit code) would fail
anywhere, and a refusal is a node's right: neither counts. Counts decay with a half-life, so a
node that failed an hour ago and has run well since is trusted again.

The score is ``(completed + 1) / (completed + failed + 2)``: 0.5 for a node with no history,
towards 1 for one that always completes. The requester ranks by it
(:class:`requester.selection.reputation.ReputationRanker`), keeps it in the job store (the
``reputations`` table) and shows it with each node (``bacalao node list``).
"""

from __future__ import annotations

import enum
import functools
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from protocol.execution import Execution
from protocol.states import ExecutionStateType as S

HALF_LIFE_S = 3600.0


class Outcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"  # the node's doing
    MISMATCHED = "mismatched"  # it completed, but its result lost a verified job's vote


def outcome_of(execution: Execution) -> Outcome | None:
    """What an ended execution says of its node (None: nothing)."""
    if execution.state == S.COMPLETED:
        return Outcome.MISMATCHED if execution.verdict.mismatched else Outcome.COMPLETED
    if execution.state == S.FAILED and execution.verdict.retryable:
        return Outcome.FAILED
    return None


@dataclass(frozen=True)
class Reputation:
    completed: float = 0.0  # decayed counts, as of updated_ns
    failed: float = 0.0
    updated_ns: int = 0

    @property
    def score(self) -> float:
        return (self.completed + 1) / (self.completed + self.failed + 2)

    def decayed(self, now_ns: int, half_life_s: float = HALF_LIFE_S) -> Reputation:
        """The counts as they stand at ``now_ns``."""
        elapsed_s = max(0.0, (now_ns - self.updated_ns) / 1e9) if self.updated_ns else 0.0
        factor = math.pow(0.5, elapsed_s / half_life_s)
        return Reputation(self.completed * factor, self.failed * factor, now_ns)

    def recorded(self, outcome: Outcome, now_ns: int) -> Reputation:
        now = self.decayed(now_ns)
        if outcome is Outcome.COMPLETED:
            return Reputation(now.completed + 1, now.failed, now_ns)
        if outcome is Outcome.MISMATCHED:  # counted as completed when it ended: no more
            return Reputation(max(0.0, now.completed - 1), now.failed + 1, now_ns)
        return Reputation(now.completed, now.failed + 1, now_ns)


NO_HISTORY = Reputation()


class Reputations:
    """Thread-safe: executions end on the orchestrator's thread and on the API's. ``change``
    applies an outcome to the node's reputation in the job store (its ``change_reputation``,
    which may wait for the batch under way); :meth:`saved` hears what the store saved, which
    counts other requesters' outcomes too. Until then the score here counts this one's."""

    def __init__(
        self,
        loaded: Mapping[str, Reputation],
        change: Callable[[str, Callable[[Reputation], Reputation]], None],
        clock_ns: Callable[[], int],
    ) -> None:
        self._reputations = dict(loaded)
        self._scores = {node: reputation.score for node, reputation in loaded.items()}
        self._change = change
        self._clock_ns = clock_ns
        self._lock = threading.Lock()

    def record(self, execution: Execution) -> None:
        outcome = outcome_of(execution)
        if outcome is None:
            return
        change = functools.partial(Reputation.recorded, outcome=outcome, now_ns=self._clock_ns())
        node_id = execution.node_id
        with self._lock:
            self._set(node_id, change(self._reputations.get(node_id, NO_HISTORY)))
        self._change(node_id, change)

    def saved(self, node_id: str, reputation: Reputation) -> None:
        """The store saved this reputation of the node."""
        with self._lock:
            self._set(node_id, reputation)

    def _set(self, node_id: str, reputation: Reputation) -> None:
        self._reputations[node_id] = reputation
        self._scores[node_id] = reputation.score

    def get(self, node_id: str) -> Reputation | None:
        with self._lock:
            return self._reputations.get(node_id)

    @property
    def scores(self) -> Mapping[str, float]:
        """Each known node's score as of its latest outcome (read without the lock: the
        ranking tolerates a score a moment old)."""
        return self._scores
