"""Which result of a verified job stands: the one most of its executions agree on. Pure.

With Count executions completed, the hash more than half of them reported wins; the
executions that reported another are mismatched (their node's reputation pays for it, and
their results are not the job's). No hash with a majority: the job fails, naming them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from protocol.execution import Execution
from protocol.verification import RESULT_HASH

NO_HASH = "(none)"  # what a node that reported no hash is shown as


@dataclass(frozen=True)
class Verdicts:
    majority: str = ""  # the winning hash ('' when none has a majority)
    mismatched: list[Execution] = field(default_factory=list)
    disagreement: str = ""  # why the job fails, when no result has a majority


def hash_of(execution: Execution) -> str:
    return execution.compute_state.details.get(RESULT_HASH, "") or NO_HASH


def verify(completed: Sequence[Execution]) -> Verdicts:
    """Compare the hashes of ``completed`` (every execution of the job that completed)."""
    hashes = Counter(hash_of(execution) for execution in completed)
    winner, votes = hashes.most_common(1)[0]
    if winner != NO_HASH and votes * 2 > len(completed):
        mismatched = [e for e in completed if hash_of(e) != winner]
        return Verdicts(majority=winner, mismatched=mismatched)
    shown = ", ".join(f"{e.node_id}: {_short(hash_of(e))}" for e in completed)
    return Verdicts(disagreement=f"no result has a majority of {len(completed)} ({shown})")


def _short(result_hash: str) -> str:
    return result_hash[:19]  # "sha256:" and 12 hex digits
