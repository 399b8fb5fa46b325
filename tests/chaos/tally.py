"""What became of a stream of jobs after a fault: one line to print, and the counts the
tests assert on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tests.support.nodes import TERMINAL, NodeProc

COMPLETED = 7  # ExecutionStateType.COMPLETED on the wire


@dataclass(frozen=True)
class Tally:
    submitted: int
    completed: int
    failed: int
    lost: int  # not ended by the deadline
    duplicated: int  # more completed executions than the job's Count

    def line(self, what: str) -> str:
        return (
            f"{what}: submitted={self.submitted} completed={self.completed} "
            f"failed={self.failed} lost={self.lost} duplicated={self.duplicated}"
        )


def tally(requester: NodeProc, job_ids: Iterable[str], count: int = 1) -> Tally:
    """Count ``job_ids`` (each asked to run ``count`` times) by how they ended."""
    ids = list(job_ids)
    completed = failed = lost = duplicated = 0
    for job_id in ids:
        state = requester.job(job_id)["State"]["StateType"]
        if state not in TERMINAL:
            lost += 1
            continue
        completed += state == "Completed"
        failed += state != "Completed"
        runs = requester.executions(job_id)
        duplicated += sum(e["ComputeState"]["StateType"] == COMPLETED for e in runs) > count
    return Tally(len(ids), completed, failed, lost, duplicated)
