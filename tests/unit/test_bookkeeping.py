"""The requester's bookkeeping rides on Job and Execution without ever being on the wire."""

from __future__ import annotations

import json

from protocol.bookkeeping import NO_VERDICT, NOT_QUEUED, Queueing, Verdict
from protocol.execution import Execution
from protocol.job import Job

JOB = {"ID": "j-1", "Tasks": [{"Engine": {"Type": "noop"}}]}


def test_it_is_never_serialised_and_copies_keep_it() -> None:
    queueing = Queueing(since_ns=1, round_ns=2, prev_round_ns=3, retries=4)
    job = Job.model_validate(JOB).with_queueing(queueing)
    assert job.queueing == queueing
    assert "1" not in json.dumps(job.to_wire()["State"])
    wire = job.model_dump_json(by_alias=True)
    assert "queueing" not in wire.lower()
    assert job.model_copy(update={"revision": 9}).queueing == queueing
    assert job.model_copy(deep=True).queueing == queueing
    assert Job.model_validate_json(wire).queueing == NOT_QUEUED

    verdict = Verdict(retryable=True, busy=True)
    execution = Execution(id="e-1", node_id="n-1", job_id="j-1").with_verdict(verdict)
    assert execution.verdict == verdict
    assert "verdict" not in execution.model_dump_json(by_alias=True).lower()
    assert execution.model_copy(update={"revision": 2}).verdict == verdict
    assert Execution(id="e-1", node_id="n-1", job_id="j-1").verdict == NO_VERDICT


def test_a_client_cannot_set_it() -> None:
    sent = {**JOB, "_queueing": {"retries": 5}, "Queueing": {"Retries": 5}, "queueing": 5}
    assert Job.model_validate(sent).queueing == NOT_QUEUED
    execution = Execution.model_validate(
        {"ID": "e-1", "NodeID": "n", "JobID": "j", "_verdict": {"busy": True}, "Verdict": 1}
    )
    assert execution.verdict == NO_VERDICT
