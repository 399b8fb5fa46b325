"""The requester's caps on what one job may ask, and the file-system limits of its paths."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from protocol.errors import ValidationError
from protocol.job import Job
from requester.limits import SubmissionLimits, check_limits
from tests.support.jobs import noop_job

LIMITS = SubmissionLimits(
    max_execution_timeout_s=600,
    max_count=3,
    max_inline_bytes=1000,
    max_inputs=2,
    max_result_paths=2,
)


def job(count: int = 1, **task: Any) -> Job:
    return Job.from_wire(noop_job(count=count, **task), prefix="Job")


def inline(size: int, target: str) -> dict[str, Any]:
    data = base64.b64encode(b"x" * size).decode()
    url = f"data:application/octet-stream;base64,{data}"
    return {"Source": {"Type": "inline", "Params": {"URL": url}}, "Target": target}


def url_input(target: str) -> dict[str, Any]:
    source = {"Type": "urlDownload", "Params": {"URL": "https://example.com/a"}}
    return {"Source": source, "Target": target}


def results(count: int) -> list[dict[str, str]]:
    return [{"Name": f"r{n}", "Path": f"/out{n}"} for n in range(count)]


def refusal(candidate: Job, limits: SubmissionLimits = LIMITS) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        check_limits(candidate, limits)
    return refused.value


def test_a_job_within_every_limit_passes() -> None:
    check_limits(
        job(
            count=3,
            Timeouts={"ExecutionTimeout": 600},
            InputSources=[inline(100, "/a"), url_input("/b")],
            ResultPaths=results(2),
        ),
        LIMITS,
    )


@pytest.mark.parametrize(
    ("candidate", "field", "words"),
    [
        (job(count=4), "Job.Count", "4 is over this requester's limit of 3"),
        (
            job(Timeouts={"ExecutionTimeout": 4_000_000_000}),
            "Job.Tasks[0].Timeouts.ExecutionTimeout",
            "--max-execution-timeout",
        ),
        (
            job(InputSources=[url_input("/a"), url_input("/b"), url_input("/c")]),
            "Job.Tasks[0].InputSources",
            "3 inputs",
        ),
        (job(ResultPaths=results(3)), "Job.Tasks[0].ResultPaths", "3 paths"),
        (
            job(InputSources=[inline(600, "/a"), inline(600, "/b")]),
            "Job.Tasks[0].InputSources[1]",
            "--max-inline-bytes",
        ),
    ],
)
def test_a_job_over_a_limit_is_refused_naming_the_field(
    candidate: Job, field: str, words: str
) -> None:
    refused = refusal(candidate)
    assert refused.field == field
    assert words in str(refused)


def test_zero_turns_a_limit_off() -> None:
    off = SubmissionLimits(0, 0, 0, 0, 0)
    check_limits(
        job(
            count=1000,
            Timeouts={"ExecutionTimeout": 4_000_000_000},
            InputSources=[inline(5000, "/a")],
            ResultPaths=results(100),
        ),
        off,
    )


def test_the_default_limits_refuse_what_pins_a_node() -> None:
    defaults = SubmissionLimits()
    assert (
        "ExecutionTimeout"
        in refusal(job(Timeouts={"ExecutionTimeout": 4_000_000_000}), defaults).field
    )
    assert refusal(job(count=1_000_000), defaults).field == "Job.Count"
    check_limits(job(Timeouts={"ExecutionTimeout": 3600}), defaults)


@pytest.mark.parametrize(
    ("task", "field", "words"),
    [
        ({"ResultPaths": [{"Name": "r" * 256, "Path": "/out"}]}, "ResultPaths[0].Name", "255"),
        (
            {"ResultPaths": [{"Name": "é" * 128, "Path": "/out"}]},
            "ResultPaths[0].Name",
            "256 bytes",
        ),
        ({"ResultPaths": [{"Name": "r", "Path": "/" + "p" * 256}]}, "ResultPaths[0].Path", "255"),
        (
            {"ResultPaths": [{"Name": "r", "Path": "/a" * 2049}]},
            "ResultPaths[0].Path",
            "4096-byte",
        ),
        ({"InputSources": [url_input("/" + "t" * 300)]}, "InputSources[0].Target", "255"),
    ],
)
def test_a_path_no_file_system_takes_is_refused_at_submission(
    task: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        job(**task)
    assert refused.value.field == f"Job.Tasks[0].{field}"
    assert words in str(refused.value)


def test_the_longest_names_a_file_system_takes_are_accepted() -> None:
    job(ResultPaths=[{"Name": "r" * 255, "Path": "/" + "p" * 255}])
