"""Verification of redundant executions: a job run on Count > 1 nodes can ask the requester
to check that they agree.

A job asks with the label or meta entry ``bacalhau.org/verify: deterministic`` (the CLI's
``--verify deterministic``). Each compute node then hashes what the run produced (its exit
code, its stdout and every file of its output folders: not stderr, which tools fill with
timings) and reports the hash in its RunResult; the requester takes the result most
executions agree on (:mod:`requester.verifier`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # protocol.specs checks jobs with this module, and protocol.job uses them
    from protocol.job import Job

VERIFY_KEY = "bacalhau.org/verify"
DETERMINISTIC = "deterministic"
METHODS = (DETERMINISTIC,)
RESULT_HASH = "ResultHash"  # the ComputeState.Details entry holding a node's hash


def verification(job: Job) -> str:
    """The verification the job asks for ('' for none), from its meta or its labels."""
    return (job.meta.get(VERIFY_KEY) or job.labels.get(VERIFY_KEY) or "").strip().lower()


def problem(job: Job) -> str | None:
    """Why the job's verification cannot be done, or None."""
    method = verification(job)
    if not method:
        return None
    if method not in METHODS:
        return f"{method!r} is not a verification bacalao does (known: {', '.join(METHODS)})"
    if job.count < 2:
        return f"needs Count of 2 or more to compare results (Count is {job.count})"
    return None
