"""cli.jobspec and cli.inputs: command-line values -> a Bacalhau v1 Job, without a network."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import wasmtime
import yaml

from cli.errors import JobSpecError
from cli.inputs import LARGE_MODULE_BYTES, module_source, parse_input
from cli.jobspec import (
    WasmRunSpec,
    build_wasm_job,
    job_to_yaml,
    load_job,
    parse_constraints,
    parse_env,
    parse_labels,
    parse_result_path,
)
from cli.publishers import parse_publisher
from protocol.job import InputSource, Job, PublisherSpec
from protocol.specs.engines import NoopParams, WasmParams
from protocol.specs.publishers import S3PublisherParams
from protocol.specs.sources import InlineParams, S3Params

HELLO_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 8) "hello\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 8))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20)))))
"""


@pytest.fixture
def wat_file(tmp_path: Path) -> Path:
    path = tmp_path / "hello.wat"
    path.write_text(HELLO_WAT)
    return path


@pytest.fixture
def wasm_file(tmp_path: Path) -> Path:
    path = tmp_path / "tool.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm(HELLO_WAT)))
    return path


# -- --input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "target"),
    [
        ("/data/in.csv", {"Type": "local", "Params": {"SourcePath": "/data/in.csv"}}, "/inputs"),
        (
            "file:///data/my%20dir",
            {"Type": "local", "Params": {"SourcePath": "/data/my dir"}},
            "/inputs",
        ),
        ("file:///data:/mnt/d", {"Type": "local", "Params": {"SourcePath": "/data"}}, "/mnt/d"),
        ("/a/b:/inputs/b", {"Type": "local", "Params": {"SourcePath": "/a/b"}}, "/inputs/b"),
        (
            "https://example.com:8443/x.csv",
            {"Type": "urlDownload", "Params": {"URL": "https://example.com:8443/x.csv"}},
            "/inputs",
        ),
        (
            "http://example.com/x.csv:/inputs/x.csv",
            {"Type": "urlDownload", "Params": {"URL": "http://example.com/x.csv"}},
            "/inputs/x.csv",
        ),
        (
            "data:text/plain,hi:/inputs/hi.txt",
            {"Type": "inline", "Params": {"URL": "data:text/plain,hi"}},
            "/inputs/hi.txt",
        ),
        (
            "s3://bucket/some/prefix/",
            {"Type": "s3", "Params": {"Bucket": "bucket", "Key": "some/prefix/"}},
            "/inputs",
        ),
        ("ipfs://QmCID:/ipfs", {"Type": "ipfs", "Params": {"CID": "QmCID"}}, "/ipfs"),
        (  # Bacalhau's own example: the last colon before an absolute path starts DST
            "https://example.com/data.csv:/inputs",
            {"Type": "urlDownload", "Params": {"URL": "https://example.com/data.csv"}},
            "/inputs",
        ),
        (
            "https://example.com:8443/data.csv:/inputs/d.csv",
            {"Type": "urlDownload", "Params": {"URL": "https://example.com:8443/data.csv"}},
            "/inputs/d.csv",
        ),
        (
            "http://[::1]:8080/x",
            {"Type": "urlDownload", "Params": {"URL": "http://[::1]:8080/x"}},
            "/inputs",
        ),
    ],
)
def test_input_short_forms(value: str, source: dict[str, object], target: str) -> None:
    assert parse_input(value) == InputSource.from_wire({"Source": source, "Target": target})


def test_input_long_form_with_options_and_commas_in_the_uri() -> None:
    assert parse_input("src=/data,dst=/mnt,opt=readwrite=true") == InputSource.from_wire(
        {
            "Source": {"Type": "local", "Params": {"SourcePath": "/data", "ReadWrite": True}},
            "Target": "/mnt",
        }
    )
    inline = parse_input("src=data:text/plain,a,b,dst=/in/ab.txt")
    assert inline.source.params == InlineParams(url="data:text/plain,a,b")
    assert inline.target == "/in/ab.txt"
    s3 = parse_input("src=s3://b/k,opt=region=eu-west-1,opt=endpoint=http://minio:9000")
    assert s3.source.params == S3Params.from_wire(
        {
            "Bucket": "b",
            "Key": "k",
            "Region": "eu-west-1",
            "Endpoint": "http://minio:9000",
        }
    )
    assert s3.target == "/inputs"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("data/in.csv", "must be absolute"),
        ("ftp://host/x", "unsupported scheme 'ftp'"),
        ("src=/data,dst=relative", "must be absolute"),
        ("src=/data,opt=color=blue", "unknown option 'color'"),
        ("src=/data,opt=readwrite=maybe", "not true or false"),
        ("dst=/in", "has no src="),
        ("s3:///key", "names no bucket"),
        ("file://otherhost/data", "not a host"),
        (  # not a port, nor a DST (those are absolute): say so instead of a bad download
            "http://x:relative",
            "the port 'relative' is not a number (a DST must be an absolute path: "
            "http://x:/relative)",
        ),
        ("https://h:data/file.csv", "the port 'data' is not a number"),
        ("src=http://x:rel,dst=/in", "the port 'rel' is not a number"),
        ("http://h:99999/x", "port 99999 is out of range (1-65535)"),
        ("http://h:0/x", "port 0 is out of range"),
        ("http://:80/x", "has no host"),
    ],
)
def test_input_errors_name_the_option(value: str, fragment: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_input(value)
    assert caught.value.option == "--input"
    assert fragment in caught.value.problem


# -- env, labels, constraints, results, publisher -------------------------------------------


def test_env_keeps_everything_after_the_first_equals_sign() -> None:
    assert parse_env(["A=1", "B=x=y", "EMPTY="]) == {"A": "1", "B": "x=y", "EMPTY": ""}
    with pytest.raises(JobSpecError, match="KEY=VALUE"):
        parse_env(["NOVALUE"])


def test_labels_repeatable_or_comma_separated() -> None:
    assert parse_labels(["team=ml,env=prod", "gpu", "env=dev"]) == {
        "team": "ml",
        "env": "dev",
        "gpu": "",
    }
    with pytest.raises(JobSpecError) as caught:
        parse_labels(["=x"])
    assert caught.value.option == "--labels"


def test_constraints_and_selectors_combine() -> None:
    found = parse_constraints(["region=eu,zone in (a,b)"], ["gpu", "cores>4"])
    assert [(r.key, r.operator, r.values) for r in found] == [
        ("region", "=", ["eu"]),
        ("zone", "in", ["a", "b"]),
        ("gpu", "exists", []),
        ("cores", "gt", ["4"]),
    ]
    with pytest.raises(JobSpecError) as caught:
        parse_constraints([], ["zone in (a"])
    assert caught.value.option == "--selector"


def test_result_paths_and_publishers() -> None:
    assert parse_result_path("outputs:/outputs") == {"Name": "outputs", "Path": "/outputs"}
    with pytest.raises(JobSpecError, match="NAME:PATH"):
        parse_result_path("/outputs")
    assert parse_publisher("Local") == PublisherSpec.from_wire({"Type": "local", "Params": {}})
    assert parse_publisher("s3://results/run-1") == PublisherSpec.from_wire(
        {"Type": "s3", "Params": {"Bucket": "results", "Key": "run-1"}}
    )
    with pytest.raises(JobSpecError) as caught:
        parse_publisher("dropbox")
    assert caught.value.option == "--publisher"


ENDPOINT = "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("value", "params"),
    [
        ("s3://myBucket/dir/file-001.txt", {"Bucket": "myBucket", "Key": "dir/file-001.txt"}),
        (
            f"s3://myBucket/dir/file-001.txt,opt=endpoint={ENDPOINT},opt=region=us-east-1",
            {
                "Bucket": "myBucket",
                "Key": "dir/file-001.txt",
                "Endpoint": ENDPOINT,
                "Region": "us-east-1",
            },
        ),
        (
            "s3,opt=bucket=myBucket,opt=key=dir/file-001.txt,opt=region=us-east-1",
            {"Bucket": "myBucket", "Key": "dir/file-001.txt", "Region": "us-east-1"},
        ),
        (
            "s3://runs/{jobID}/{executionID}, opt=compress=true, OPT=Endpoint=" + ENDPOINT,
            {
                "Bucket": "runs",
                "Key": "{jobID}/{executionID}",
                "Compress": True,
                "Endpoint": ENDPOINT,
            },
        ),
        ("s3://runs,opt=compress=no", {"Bucket": "runs", "Key": "", "Compress": False}),
        ("target=s3://b/k,opt=key=other", {"Bucket": "b", "Key": "other"}),
        ('"s3://b/a,b",opt=compress=1', {"Bucket": "b", "Key": "a,b", "Compress": True}),
    ],
)
def test_s3_publisher_forms_as_bacalhau_spells_them(value: str, params: dict[str, object]) -> None:
    assert parse_publisher(value) == PublisherSpec.from_wire({"Type": "s3", "Params": params})


@pytest.mark.parametrize("value", ["ipfs", "IPFS", "ipfs://", "dst=ipfs", "noop", "local://"])
def test_simple_publishers(value: str) -> None:
    kind = value.partition("=")[2] or value
    expected = {"Type": kind.removesuffix("://").lower(), "Params": {}}
    assert parse_publisher(value) == PublisherSpec.from_wire(expected)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "names no publisher"),
        (
            "s3://b/k,opt=colour=blue",
            "unknown option 'colour' of the s3 publisher (known: opt=bucket",
        ),
        ("s3://b/k,opt=compress=maybe", "compress='maybe' is not true or false"),
        ("s3://b/k,opt=endpoint=minio:9000", "endpoint 'minio:9000' is not an http(s):// URL"),
        ("s3://b/k,y=/mount/path", "'y=/mount/path' is not an option"),
        ("s3://b/k,extra", "'extra' is not an option"),
        ("s3://b/k,opt==x", "names no option"),
        ("s3:///key-only", "names no bucket"),
        ("s3,opt=key=k", "names no bucket"),
        ("ipfs,opt=pin=true", "the ipfs publisher takes no options"),
        ("ipfs://bafyabc", "is not a publisher"),
        ("dropbox", "is not a publisher"),
    ],
)
def test_bad_publishers_name_the_option(value: str, fragment: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_publisher(value)
    assert caught.value.option == "--publisher"
    assert fragment in caught.value.problem


def test_a_compressed_s3_publisher_makes_a_valid_job(wat_file: Path) -> None:
    spec = WasmRunSpec(module=str(wat_file), publisher="s3://r/{jobID},opt=compress=true")
    publisher = build_wasm_job(spec).job.task.publisher
    assert publisher.type == "s3"
    assert publisher.params == S3PublisherParams(bucket="r", key="{jobID}", compress=True)


# -- the module ------------------------------------------------------------------------------


def test_wat_is_compiled_and_inlined_under_app(wat_file: Path) -> None:
    built = build_wasm_job(WasmRunSpec(module=str(wat_file), args=("a", "-b")))
    task = built.job.task
    module_input = task.input_sources[0]
    assert module_input.target == "/app/hello.wasm"
    assert module_input.source.type == "inline"
    assert isinstance(module_input.source.params, InlineParams)
    url = module_input.source.params.url
    prefix = "data:application/wasm;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]) == bytes(wasmtime.wat2wasm(HELLO_WAT))
    assert task.engine.type == "wasm"
    assert task.engine.params == WasmParams(
        entry_module="/app/hello.wasm",
        entrypoint="_start",
        parameters=["a", "-b"],
        environment_variables={},
    )
    assert task.publisher.type == "local"
    assert built.warnings == ()


def test_module_by_url_is_fetched_by_the_compute_node() -> None:
    module = module_source("https://example.com/bin/tool.wasm")
    assert module.input_source == InputSource.from_wire(
        {
            "Source": {
                "Type": "urlDownload",
                "Params": {"URL": "https://example.com/bin/tool.wasm"},
            },
            "Target": "/app/tool.wasm",
        }
    )
    assert module.size_bytes is None


def test_module_errors(tmp_path: Path) -> None:
    not_wasm = tmp_path / "notes.wasm"
    not_wasm.write_text("hello")
    broken = tmp_path / "broken.wat"
    broken.write_text("(module (func $f (unknown-instruction)))")
    for path, fragment in (
        (not_wasm, "is not a wasm module"),
        (broken, "does not compile"),
        (tmp_path / "missing.wasm", "cannot read"),
    ):
        with pytest.raises(JobSpecError) as caught:
            module_source(str(path))
        assert caught.value.option == "MODULE"
        assert fragment in caught.value.problem


def test_large_module_warns(tmp_path: Path) -> None:
    big = tmp_path / "big.wasm"
    big.write_bytes(b"\0asm\x01\0\0\0" + b"\0" * LARGE_MODULE_BYTES)
    built = build_wasm_job(WasmRunSpec(module=str(big)))
    assert len(built.warnings) == 1
    assert "travels inside the job" in built.warnings[0]


# -- the whole job ---------------------------------------------------------------------------


def test_every_option_lands_in_the_job(wasm_file: Path) -> None:
    spec = WasmRunSpec(
        module=str(wasm_file),
        inputs=("/data:/inputs/data", "https://example.com/a.csv:/inputs/a.csv"),
        env=("GREETING=hi",),
        entry_point="main",
        count=3,
        timeout_s=30,
        memory="64Mb",
        cpu="500m",
        outputs=("outputs:/outputs",),
        publisher="noop",
        labels=("team=ml",),
        constraints=("region=eu",),
        selectors=("gpu",),
    )
    built = build_wasm_job(spec)
    job = built.job
    task = job.task
    assert job.count == 3
    assert job.labels == {"team": "ml"}
    assert [(c.key, c.operator) for c in job.constraints] == [("region", "="), ("gpu", "exists")]
    assert [s.target for s in task.input_sources] == [
        "/app/tool.wasm",
        "/inputs/data",
        "/inputs/a.csv",
    ]
    params = WasmParams.from_wire(task.engine.params)
    assert params.entrypoint == "main"
    assert params.environment_variables == {"GREETING": "hi"}
    assert (task.resources.memory, task.resources.cpu) == ("64Mb", "500m")
    assert task.timeouts.execution_timeout == 30
    assert [(r.name, r.path) for r in task.result_paths] == [("outputs", "/outputs")]
    assert task.publisher.type == "noop"
    assert built.warnings == ("ResultPaths are set but the noop publisher discards results",)


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"memory": "lots"}, "--memory"),
        ({"cpu": "fast"}, "--cpu"),
        ({"outputs": ("stdout:/outputs",)}, "--output"),
        ({"inputs": ("/a", "/b")}, "--input"),  # two inputs on the default /inputs
        ({"count": 0}, "--count"),
    ],
)
def test_bad_values_are_blamed_on_their_option(
    wasm_file: Path, changes: dict[str, object], option: str
) -> None:
    fields: dict[str, object] = {"module": str(wasm_file), **changes}
    with pytest.raises(JobSpecError) as caught:
        build_wasm_job(WasmRunSpec(**fields))  # type: ignore[arg-type]
    assert caught.value.option == option
    if not option:
        assert "share one Target" in str(caught.value)


def test_dry_run_yaml_round_trips(wat_file: Path) -> None:
    job = build_wasm_job(
        WasmRunSpec(
            module=str(wat_file),
            inputs=("s3://bucket/key:/inputs/k",),
            env=("EMPTY=",),
            labels=("gpu",),
            constraints=("zone in (a,b)",),
            outputs=("outputs:/outputs",),
            memory="1Gi",
        )
    ).job
    text = job_to_yaml(job)
    data = yaml.safe_load(text)
    assert data["Type"] == "batch"
    assert "State" not in data
    assert "ID" not in data
    assert Job.from_wire(data) == job
    assert load_job(text, "dry-run").job == job


def test_load_job_accepts_bacalhau_files() -> None:
    spec = {
        "Type": "batch",
        "Count": 2,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "noop", "Params": {"Stdout": "hi"}},
                "Publisher": {"Type": "local"},
            }
        ],
    }
    wrapped = yaml.safe_dump({"Job": spec})
    as_json = json.dumps(spec)
    lowercase = yaml.safe_dump({"job": {"type": "batch", "count": 2, "tasks": spec["Tasks"]}})
    jobs = [load_job(text, "job.yaml").job for text in (wrapped, as_json, lowercase)]
    assert all(job == jobs[0] for job in jobs)
    assert jobs[0].count == 2
    assert jobs[0].task.engine.params == NoopParams(stdout="hi")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Tasks: [unclosed", "is not valid YAML or JSON (line"),
        ("- just\n- a list\n", "does not hold a job"),
        ("Tasks: []", "exactly one task"),
        (
            "Tasks:\n- Engine: {Type: quantum}\n",
            "Tasks[0].Engine.Type: unknown engine 'quantum'",
        ),
    ],
)
def test_load_job_errors_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        load_job(text, "job.yaml")
    assert fragment in str(caught.value)


DESCRIBED = """
Job:
  ID: j-0f6c2a8e-1111-4222-8333-944445555666
  Name: j-0f6c2a8e-1111-4222-8333-944445555666
  Namespace: default
  Type: batch
  Count: 1
  Labels: {team: ml}
  Meta: {bacalhau.org/requester.id: n-1}
  Tasks:
  - Name: main
    Engine: {Type: noop, Params: {Stdout: hi}}
    Publisher: {Type: local}
  State: {StateType: Completed, Message: ""}
  Version: 1
  Revision: 4
  CreateTime: 1700000000000000000
  ModifyTime: 1700000001000000000
Executions:
- ID: e-1
  ComputeState: {StateType: 7}
History: []
"""


def test_describe_output_loads_as_a_new_job() -> None:
    """What `job describe --output yaml` prints: the Job is unwrapped, and what the requester
    set (ID, State, Revision, Version, times, a Name defaulted to the ID) is dropped."""
    job = load_job(DESCRIBED, "stdin").job
    assert (job.id, job.name, job.revision, job.version) == ("", "", 0, 0)
    assert (job.create_time, job.modify_time) == (0, 0)
    assert job.state.state_type.value == "Pending"
    assert job.labels == {"team": "ml"}
    assert job.task.engine.params == NoopParams(stdout="hi")
    named = re.sub(r"(?m)^  Name: .*$", "  Name: nightly", DESCRIBED)
    assert load_job(named, "-").job.name == "nightly"  # a name the user gave is kept
    lowercase = DESCRIBED.replace("Job:", "job:").replace("Executions:", "executions:")
    assert load_job(lowercase, "-").job == job


def test_describe_shaped_file_with_other_keys_is_refused() -> None:
    with pytest.raises(JobSpecError, match="holds a Job and also Extra"):
        load_job(DESCRIBED + "Extra: 1\n", "job.yaml")
    with pytest.raises(JobSpecError, match="Job: must be a mapping"):
        load_job("Job: [1, 2]\n", "job.yaml")
