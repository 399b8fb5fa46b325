from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import ValidationError
from protocol.job import Job, JobStateType
from protocol.specs import validate_job


def job_doc(**overrides: Any) -> dict[str, Any]:
    task = {"Engine": {"Type": "noop"}}
    task.update(overrides.pop("task", {}))
    return {"Type": "batch", "Tasks": [task], **overrides}


def parse(doc: dict[str, Any]) -> Job:
    job = Job.from_wire(doc, prefix="Job")
    validate_job(job)
    return job


def test_defaults_follow_bacalhau() -> None:
    job = parse({"Tasks": [{"Engine": {"Type": "noop"}}]})
    assert job.count == 1
    assert job.namespace == "default"
    assert job.type == "batch"
    assert job.task.name == "main"
    assert job.task.publisher.type == "noop"
    assert job.state.state_type is JobStateType.PENDING


def test_keys_match_case_insensitively_and_output_uses_bacalhau_casing() -> None:
    job = parse({"count": 2, "TASKS": [{"engine": {"type": "NOOP"}, "resources": {"cpu": "500m"}}]})
    wire = job.to_wire()
    assert wire["Count"] == 2
    assert wire["Tasks"][0]["Engine"]["Type"] == "noop"
    assert wire["Tasks"][0]["Resources"]["CPU"] == "500m"
    assert job.task.resources.parsed().cpu == 0.5


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (job_doc(Count=-1), "Job.Count", "greater than or equal to 0"),
        (job_doc(Count="many"), "Job.Count", "integer"),
        (
            job_doc(task={"Engine": {"Type": "fortran"}}),
            "Job.Tasks[0].Engine.Type",
            "unknown engine",
        ),
        (
            job_doc(Constraints=[{"Key": "a", "Operator": "~=", "Values": ["b"]}]),
            "Job.Constraints[0].Operator",
            "unknown operator",
        ),
        (job_doc(Type="daemon"), "Job.Type", "not supported"),
        ({"Tasks": []}, "Job.Tasks", "exactly one task"),
        (job_doc(task={"Resources": {"Memory": "lots"}}), "Job.Tasks[0].Resources.Memory", "size"),
        (
            job_doc(task={"Engine": {"Type": "wasm", "Params": {"EntryModule": "/x.wasm"}}}),
            "Job.Tasks[0].Engine.Params.EntryModule",
            "not the Target",
        ),
        (
            job_doc(task={"InputSources": [{"Source": {"Type": "s4"}, "Target": "/in"}]}),
            "Job.Tasks[0].InputSources[0].Source.Type",
            "unknown storage source",
        ),
    ],
)
def test_bad_specs_name_the_field(doc: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(doc)
    assert caught.value.field == field
    assert words in caught.value.problem


def test_both_wasm_entry_module_shapes_are_accepted() -> None:
    inline = {"Type": "inline", "Params": {"URL": "data:,x"}}
    current = job_doc(
        task={
            "Engine": {
                "Type": "wasm",
                "Params": {"EntryModule": "/app/m.wasm", "Entrypoint": "go"},
            },
            "InputSources": [{"Source": inline, "Target": "/app/m.wasm"}],
        }
    )
    legacy = job_doc(
        task={
            "Engine": {
                "Type": "wasm",
                "Params": {
                    "EntryModule": {"Source": inline},
                    "EntryPoint": "go",
                    "EnvironmentVariables": {"A": "1"},
                },
            }
        }
    )
    assert parse(current).task.engine.type == "wasm"
    assert parse(legacy).task.engine.type == "wasm"


def test_storage_type_aliases_get_the_registered_spelling() -> None:
    job = parse(
        job_doc(
            task={
                "InputSources": [
                    {
                        "Source": {"Type": "localDirectory", "Params": {"SourcePath": "/d"}},
                        "Target": "/in",
                    },
                    {
                        "Source": {"Type": "URLDOWNLOAD", "Params": {"URL": "http://h/x"}},
                        "Target": "/u",
                    },
                ]
            }
        )
    )
    assert [s.source.type for s in job.task.input_sources] == ["local", "urlDownload"]
