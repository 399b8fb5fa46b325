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
        (
            job_doc(
                task={
                    "InputSources": [
                        {
                            "Source": {"Type": "urlDownload", "Params": {"URL": "http://x:rel"}},
                            "Target": "/in",
                        }
                    ]
                }
            ),
            "Job.Tasks[0].InputSources[0].Source.Params.URL",
            "not a usable URL",
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


def problem_of(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        parse(doc)
    return caught.value.field, caught.value.problem


INT64_MAX = 2**63 - 1
MAX_TIMEOUT_S = 4_611_686_018  # half of Go's longest time.Duration, in seconds
SOURCE = {"Type": "inline", "Params": {"URL": "data:,x"}}


@pytest.mark.parametrize(
    ("resources", "field", "words"),
    [
        ({"Memory": "1" * 400}, "Memory", "(400 characters) is too large (at most"),
        ({"Disk": "1" * 400}, "Disk", "(400 characters) is too large (at most"),
        ({"Memory": "8388608Ti"}, "Memory", "is too large (at most 9223372036854775807 bytes"),
        ({"CPU": "1" * 400}, "CPU", "is more CPU than a machine has (at most 65536 cores)"),
        ({"GPU": "1" * 30}, "GPU", "is too many GPUs (at most 9223372036854775807)"),
        ({"Memory": 10**400}, "Memory", "a number of about 401 digits is too large"),
        ({"CPU": 1e300}, "CPU", "(301 characters) is more CPU than a machine has"),
        ({"CPU": True}, "CPU", 'must be a quantity such as "1" or 1, not true'),
        ({"GPU": False}, "GPU", "not false"),
    ],
)
def test_absurd_resources_are_a_validation_error_naming_the_field(
    resources: dict[str, Any], field: str, words: str
) -> None:
    where, problem = problem_of(job_doc(task={"Resources": resources}))
    assert where == f"Job.Tasks[0].Resources.{field}"
    assert words in problem


def test_resources_take_json_numbers_as_their_string() -> None:
    resources = {"CPU": 2, "Memory": 1.5e9, "Disk": 1024, "GPU": 1}
    job = parse(job_doc(task={"Resources": resources}))
    assert job.to_wire()["Tasks"][0]["Resources"] == {
        "CPU": "2",
        "Memory": "1500000000",
        "Disk": "1024",
        "GPU": "1",
    }
    parsed = job.task.resources.parsed()
    assert (parsed.cpu, parsed.memory, parsed.disk, parsed.gpu) == (2.0, 1_500_000_000, 1024, 1)


def test_largest_amounts_are_accepted() -> None:
    resources = {"CPU": "65536", "Memory": str(INT64_MAX), "GPU": str(INT64_MAX)}
    timeouts = {"ExecutionTimeout": MAX_TIMEOUT_S, "QueueTimeout": MAX_TIMEOUT_S}
    job = parse(
        job_doc(
            Count=INT64_MAX, Priority=INT64_MAX, task={"Resources": resources, "Timeouts": timeouts}
        )
    )
    assert job.count == INT64_MAX
    assert job.task.timeouts.execution_timeout == MAX_TIMEOUT_S
    assert job.task.resources.parsed().memory == INT64_MAX


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (
            job_doc(Count=10**30),
            "Job.Count",
            "is too large (at most 9223372036854775807, Go's int)",
        ),
        (job_doc(Count=INT64_MAX + 1), "Job.Count", "is too large"),
        (job_doc(Priority=10**400), "Job.Priority", "a number of about 401 digits is too large"),
        (
            job_doc(task={"Timeouts": {"ExecutionTimeout": 10**12}}),
            "Job.Tasks[0].Timeouts.ExecutionTimeout",
            "1000000000000 s is too long (at most 4611686018 s, 146 years)",
        ),
        (
            job_doc(task={"Timeouts": {"QueueTimeout": MAX_TIMEOUT_S + 1}}),
            "Job.Tasks[0].Timeouts.QueueTimeout",
            "is too long",
        ),
        (
            job_doc(task={"Timeouts": {"TotalTimeout": MAX_TIMEOUT_S + 1}}),
            "Job.Tasks[0].Timeouts.TotalTimeout",
            "is too long",
        ),
    ],
)
def test_counts_and_timeouts_are_bounded(doc: dict[str, Any], field: str, words: str) -> None:
    assert problem_of(doc)[0] == field
    assert words in problem_of(doc)[1]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("3", "must be an integer, not the string '3'"),
        (True, "must be an integer, not true"),
        (False, "must be an integer, not false"),
        (1.0, "must be an integer, not 1.0"),
        (2.5, "must be an integer, not 2.5"),
        ([1], "must be an integer, not a list"),
    ],
)
def test_integer_fields_take_only_integers_as_go_does(value: Any, words: str) -> None:
    assert problem_of(job_doc(Count=value)) == ("Job.Count", words)
    assert problem_of(job_doc(priority=value)) == ("Job.Priority", words)
    timeouts = {"executiontimeout": value}
    assert problem_of(job_doc(task={"Timeouts": timeouts})) == (
        "Job.Tasks[0].Timeouts.ExecutionTimeout",
        words,
    )


def test_a_null_integer_is_its_zero_value_as_in_go() -> None:
    job = parse(job_doc(Count=None, Priority=None, task={"Timeouts": {"QueueTimeout": None}}))
    assert (job.count, job.priority, job.task.timeouts.queue_timeout) == (1, 0, 0)


def test_strict_integers_still_match_keys_case_insensitively_and_round_trip() -> None:
    job = parse(job_doc(COUNT=3, task={"timeouts": {"EXECUTIONTIMEOUT": 60}}))
    assert (job.count, job.task.timeouts.execution_timeout) == (3, 60)
    stored = job.model_copy(update={"version": 2, "create_time": 1_700_000_000_000_000_000})
    assert Job.model_validate_json(stored.model_dump_json(by_alias=True)) == stored
    assert Job.from_wire(stored.to_wire()) == stored


@pytest.mark.parametrize(
    ("constraint", "field", "words"),
    [
        ({"Key": "", "Operator": "exists"}, "Key", "selector key cannot be blank"),
        ({"Key": "a b", "Operator": "exists"}, "Key", "key 'a b' must consist of letters"),
        ({"Key": "a", "Operator": "in", "Values": ["has space"]}, "Values[0]", "'has space'"),
        ({"Key": "a", "Operator": "in", "Values": []}, "Values", "needs at least one value"),
        ({"Key": "a", "Operator": "exists", "Values": ["x"]}, "Values", "takes no values"),
        ({"Key": "a", "Operator": "gt", "Values": ["x"]}, "Values[0]", "needs an integer"),
    ],
)
def test_constraints_follow_kubernetes_requirement_rules(
    constraint: dict[str, Any], field: str, words: str
) -> None:
    where, problem = problem_of(
        job_doc(Constraints=[{"Key": "ok", "Operator": "exists"}, constraint])
    )
    assert where == f"Job.Constraints[1].{field}"
    assert words in problem


@pytest.mark.parametrize(
    ("task", "field", "words"),
    [
        (
            {
                "InputSources": [
                    {"Source": SOURCE, "Alias": "data", "Target": "/a"},
                    {"Source": SOURCE, "Alias": "data", "Target": "/b"},
                ]
            },
            "InputSources[1].Alias",
            "'data' is already the Alias of InputSources[0]",
        ),
        (
            {
                "InputSources": [
                    {"Source": SOURCE, "Target": "/in"},
                    {"Source": SOURCE, "Target": "/x"},
                    {"Source": SOURCE, "Target": "/in/"},
                ]
            },
            "InputSources[2].Target",
            "'/in' is already the Target of InputSources[0]",
        ),
        (
            {"ResultPaths": [{"Name": "out", "Path": "/a"}, {"Name": "out", "Path": "/b"}]},
            "ResultPaths[1].Name",
            "'out' is already the Name of ResultPaths[0]",
        ),
        (
            {"ResultPaths": [{"Name": "a", "Path": "/out"}, {"Name": "b", "Path": "/out//"}]},
            "ResultPaths[1].Path",
            "'/out' is already the Path of ResultPaths[0]",
        ),
        (
            {"ResultPaths": [{"Name": "a\x00b", "Path": "/out"}]},
            "ResultPaths[0].Name",
            "is not a usable result name",
        ),
        (
            {"ResultPaths": [{"Name": "a", "Path": "/o\x00ut"}]},
            "ResultPaths[0].Path",
            "must not contain a NUL character",
        ),
        (
            {"InputSources": [{"Source": SOURCE, "Target": "/i\x00n"}]},
            "InputSources[0].Target",
            "must not contain a NUL character",
        ),
        ({"Name": "ma\x00in"}, "Name", "must not contain a NUL character"),
        ({"Name": "  "}, "Name", "must not be blank"),
        ({"Name": False}, "Name", "string"),
    ],
)
def test_task_names_and_paths_are_unique_and_usable(
    task: dict[str, Any], field: str, words: str
) -> None:
    where, problem = problem_of(job_doc(task=task))
    assert where == f"Job.Tasks[0].{field}"
    assert words in problem


@pytest.mark.parametrize("name", ["/outputs", "outputs/", "./outputs", "//outputs", " outputs "])
def test_a_result_name_is_its_folder_as_bacalhau_joins_it(name: str) -> None:
    """Bacalhau's docs write ``Name: /outputs``; Go joins the Name to the results folder
    (filepath.Join cleans it), so these are all the folder ``outputs``. The Name is kept as
    given, but for the whitespace Bacalhau's Normalize trims."""
    task = parse(job_doc(task={"ResultPaths": [{"Name": name, "Path": "/outputs"}]})).task
    assert task.result_paths[0].name == name.strip()
    assert task.result_paths[0].folder == "outputs"


@pytest.mark.parametrize("name", ["/", "a/b", "../up", "/stdout/", "./..", "  "])
def test_a_result_name_must_still_be_one_usable_folder(name: str) -> None:
    where, problem = problem_of(job_doc(task={"ResultPaths": [{"Name": name, "Path": "/o"}]}))
    assert where == "Job.Tasks[0].ResultPaths[0].Name"
    assert "is not a usable result name" in problem


def test_result_names_naming_one_folder_are_one_name() -> None:
    results = [{"Name": "outputs", "Path": "/a"}, {"Name": "/outputs", "Path": "/b"}]
    where, problem = problem_of(job_doc(task={"ResultPaths": results}))
    assert where == "Job.Tasks[0].ResultPaths[1].Name"
    assert "'outputs' is already the Name of ResultPaths[0]" in problem


def test_paths_targets_and_aliases_lose_surrounding_whitespace_as_in_bacalhau() -> None:
    task = parse(
        job_doc(
            task={
                "InputSources": [{"Source": SOURCE, "Alias": " data ", "Target": " /in "}],
                "ResultPaths": [{"Name": "out", "Path": "\t/out\n"}],
            }
        )
    ).task
    assert (task.input_sources[0].alias, task.input_sources[0].target) == ("data", "/in")
    assert task.result_paths[0].path == "/out"
    where, problem = problem_of(job_doc(task={"InputSources": [{"Source": SOURCE, "Target": " "}]}))
    assert (where, problem) == ("Job.Tasks[0].InputSources[0].Target", "must not be empty")


def test_empty_aliases_may_repeat() -> None:
    sources = [{"Source": SOURCE, "Target": "/a"}, {"Source": SOURCE, "Target": "/b"}]
    assert len(parse(job_doc(task={"InputSources": sources})).task.input_sources) == 2


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (job_doc(Name="my\x00job"), "Job.Name", "must not contain a NUL character"),
        (job_doc(Name=" "), "Job.Name", "must not be blank"),
        (job_doc(Namespace="team\x00a"), "Job.Namespace", "must not contain a NUL character"),
        (job_doc(Namespace="\t"), "Job.Namespace", "must not be blank"),
        (job_doc(Namespace=0), "Job.Namespace", "string"),
    ],
)
def test_job_name_and_namespace_follow_bacalhau(
    doc: dict[str, Any], field: str, words: str
) -> None:
    where, problem = problem_of(doc)
    assert where == field
    assert words in problem


def test_empty_name_and_namespace_take_defaults() -> None:
    job = parse(job_doc(ID="j-1", Name="", Namespace=None))
    assert (job.name, job.namespace) == ("j-1", "default")


def wasm_task(entry_module: str, target: str) -> dict[str, Any]:
    source = {"Type": "urlDownload", "Params": {"URL": "https://example.com/m.wasm"}}
    return {
        "Engine": {"Type": "wasm", "Params": {"EntryModule": entry_module}},
        "InputSources": [{"Source": source, "Target": target}],
    }


def test_the_entry_module_may_be_an_input_target_or_inside_one() -> None:
    assert parse(job_doc(task=wasm_task("/app/m.wasm", "/app/m.wasm"))).task.engine.type == "wasm"
    assert parse(job_doc(task=wasm_task("/app/m.wasm", "/app/"))).task.engine.type == "wasm"
    with pytest.raises(ValidationError, match="not the Target of any InputSource, nor inside"):
        parse(job_doc(task=wasm_task("/application/m.wasm", "/app")))
