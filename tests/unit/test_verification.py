"""Verification, pure parts: a run's results as one hash, and the vote over them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from compute import result_hash as hashing
from compute.result_hash import result_hash
from protocol.bookkeeping import Verdict
from protocol.errors import ValidationError
from protocol.execution import ComputeState, Execution
from protocol.job import Job, JobStateType
from protocol.specs import validate_job
from protocol.states import ExecutionStateType as S
from protocol.verification import RESULT_HASH, VERIFY_KEY, verification
from requester.plan import SchedulerConfig
from requester.scheduler import schedule
from requester.verifier import verify
from tests.unit.test_scheduler import NOW, node


def results(folder: Path, stdout: str, extra: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "stdout").write_text(stdout)
    (folder / "stderr").write_text(f"took {random.random()} s")  # noise, left out
    (folder / "exitCode").write_text("0")
    for name, text in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_the_same_results_hash_alike_and_any_difference_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = result_hash(results(tmp_path / "a", "hi\n", {"outputs/x.txt": "1"}))
    assert a.startswith("sha256:")
    assert result_hash(results(tmp_path / "b", "hi\n", {"outputs/x.txt": "1"})) == a  # stderr
    assert result_hash(results(tmp_path / "c", "hi!\n", {"outputs/x.txt": "1"})) != a
    assert result_hash(results(tmp_path / "d", "hi\n", {"outputs/x.txt": "2"})) != a
    assert result_hash(results(tmp_path / "e", "hi\n", {"outputs/y.txt": "1"})) != a
    # a path and the bytes of the next file cannot be shifted into one another
    shifted = result_hash(results(tmp_path / "f", "hi\n", {"outputs/x.tx": "t1"}))
    assert shifted != a
    monkeypatch.setattr(hashing, "CHUNK_BYTES", 3)  # read in chunks: the same hash
    assert result_hash(tmp_path / "a") == a


def completed(eid: str, node_id: str, hashed: str) -> Execution:
    details = {RESULT_HASH: hashed} if hashed else {}
    return Execution(
        id=eid,
        node_id=node_id,
        job_id="j-1",
        compute_state=ComputeState(state_type=S.COMPLETED, details=details),
        create_time=NOW,
        modify_time=NOW,
    )


def test_the_majority_wins_and_the_rest_are_mismatched() -> None:
    runs = [completed("e1", "a", "sha256:aa"), completed("e2", "b", "sha256:bb")]
    runs.append(completed("e3", "c", "sha256:aa"))
    verdicts = verify(runs)
    assert verdicts.majority == "sha256:aa"
    assert [e.id for e in verdicts.mismatched] == ["e2"]
    assert verdicts.disagreement == ""


@pytest.mark.parametrize(
    "hashes", [["sha256:aa", "sha256:bb"], ["", ""], ["sha256:aa", "sha256:bb", "sha256:cc"]]
)
def test_without_a_majority_nothing_stands(hashes: list[str]) -> None:
    runs = [completed(f"e{i}", f"n{i}", h) for i, h in enumerate(hashes)]
    verdicts = verify(runs)
    assert verdicts.majority == ""
    assert verdicts.disagreement.startswith(f"no result has a majority of {len(hashes)} (n0: ")


def verified_job(count: int) -> Job:
    return Job.model_validate(
        {
            "ID": "j-1",
            "Count": count,
            "Meta": {VERIFY_KEY: "Deterministic"},
            "Tasks": [{"Engine": {"Type": "noop"}}],
        }
    )


def test_the_scheduler_completes_on_a_majority_and_fails_without_one() -> None:
    nodes = [node("a"), node("b"), node("c")]
    config = SchedulerConfig(over_ask=1)
    job = verified_job(3)
    assert verification(job) == "deterministic"
    runs = [completed("e1", "a", "sha256:aa"), completed("e2", "b", "sha256:bb")]
    runs.append(completed("e3", "c", "sha256:aa"))
    plan = schedule(job, runs, nodes, NOW, config, random.Random(1))
    assert plan.job_state is JobStateType.COMPLETED
    assert plan.mismatched == [("e2", "result sha256:bb differs from the majority's sha256:aa")]
    marked = runs[1].with_verdict(Verdict(mismatched=True))
    again = schedule(job, [runs[0], marked, runs[2]], nodes, NOW, config, random.Random(1))
    assert again.mismatched == []  # marked once

    split = schedule(verified_job(2), runs[:2], nodes, NOW, config, random.Random(1))
    assert split.job_state is JobStateType.FAILED
    assert split.job_message.startswith("verification failed: no result has a majority of 2")


def test_verification_needs_a_known_method_and_two_runs() -> None:
    with pytest.raises(ValidationError, match=r"Meta\[bacalhau.org/verify\].*Count of 2"):
        validate_job(verified_job(1))
    strange = verified_job(2)
    strange.labels = {VERIFY_KEY: "fuzzy"}
    strange.meta = {}
    with pytest.raises(ValidationError, match=r"Labels\[bacalhau.org/verify\].*'fuzzy'"):
        validate_job(strange)
    assert validate_job(verified_job(2)) == []
