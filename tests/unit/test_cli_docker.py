"""``bacalao docker run``: the job it builds (seen through --dry-run), its errors, a real submit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from cli.client import APIClient
from cli.inputs import parse_input
from cli.jobspec import DockerRunSpec, build_docker_job, load_job
from cli.main import create_app
from cli.publishers import parse_publisher
from protocol.job import InputSource, Job, NetworkType, PublisherSpec
from protocol.specs.engines import DockerParams
from protocol.specs.sources import LocalParams
from tests.support.services import free_port

README_EXAMPLE = (
    "-i",
    "file:///data/logs:/input",
    "-o",
    "apples:/output_folder",
    "local/busybox:1",
    "--",
    "sh",
    "-c",
    "ls /input > /output_folder/file.txt",
)


def _refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a dry run must not call the requester ({request.url})")


def invoke(*args: str, stdin: str | None = None) -> Result:
    def client(host: str, port: int, **_: object) -> APIClient:
        return APIClient(host, port, transport=httpx.MockTransport(_refuse))

    app = create_app(client_factory=client, poll_interval_s=0)
    wide = {"COLUMNS": "400"}  # error boxes must not wrap the messages the tests look for
    return CliRunner().invoke(app, list(args), input=stdin, env=wide)


def dry_run(*args: str) -> dict[str, Any]:
    result = invoke("docker", "run", "--dry-run", *args)
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


# -- the job ---------------------------------------------------------------------------------


def test_readme_example() -> None:
    job = dry_run(*README_EXAMPLE)
    assert job["Type"] == "batch"
    task = job["Tasks"][0]
    assert task["Engine"] == {
        "Type": "docker",
        "Params": {
            "Image": "local/busybox:1",
            "Parameters": ["sh", "-c", "ls /input > /output_folder/file.txt"],
        },
    }
    assert task["InputSources"] == [
        {"Source": {"Type": "local", "Params": {"SourcePath": "/data/logs"}}, "Target": "/input"}
    ]
    assert task["ResultPaths"] == [
        {"Name": "apples", "Path": "/output_folder"},
        {"Name": "outputs", "Path": "/outputs"},  # Bacalhau adds it unless taken
    ]
    assert task["Publisher"] == {"Type": "local"}
    assert "Network" not in task  # None, the default
    assert "Resources" not in task


def test_every_flag_lands_in_the_job() -> None:
    job = dry_run(
        "-i", "src=file:///data/db,dst=/db,opt=rw=true",
        "-i", "s3://bucket/logs/,dst=/logs,opt=region=eu-west-1",
        "-i", "ipfs://QmCID",
        "-i", "https://example.com/a.csv:/csv/a.csv",
        "-i", "data:text/plain,hello:/greeting.txt",
        "-o", "results=/results",
        "-e", "MODE=fast", "-e", "EXPR=a=b",
        "-w", "/work",
        "--entrypoint", "/bin/sh,-c",
        "--cpu", "500m", "--memory", "1Gi", "--disk", "10Gb", "--gpu", "1",
        "--network", "http", "--domain", "example.com",
        "--timeout", "300",
        "--count", "2",
        "-p", "s3://out/run-1,opt=region=us-east-1,opt=endpoint=http://minio:9000",
        "-l", "team=ml,env=dev",
        "--constraints", "zone in (a,b)",
        "-s", "region=eu",
        "python:3.12",
        "--", "echo $MODE",
    )  # fmt: skip
    assert job["Count"] == 2
    assert job["Labels"] == {"team": "ml", "env": "dev"}
    assert job["Constraints"] == [
        {"Key": "zone", "Operator": "in", "Values": ["a", "b"]},
        {"Key": "region", "Operator": "=", "Values": ["eu"]},
    ]
    task = job["Tasks"][0]
    assert task["Engine"]["Params"] == {
        "Image": "python:3.12",
        "Entrypoint": ["/bin/sh", "-c"],
        "Parameters": ["echo $MODE"],
        "EnvironmentVariables": ["MODE=fast", "EXPR=a=b"],  # Bacalhau's list shape
        "WorkingDirectory": "/work",
    }
    assert [(s["Source"]["Type"], s["Target"]) for s in task["InputSources"]] == [
        ("local", "/db"),
        ("s3", "/logs"),
        ("ipfs", "/inputs"),
        ("urlDownload", "/csv/a.csv"),
        ("inline", "/greeting.txt"),
    ]
    assert task["InputSources"][0]["Source"]["Params"] == {
        "SourcePath": "/data/db",
        "ReadWrite": True,
    }
    assert task["InputSources"][1]["Source"]["Params"] == {
        "Bucket": "bucket",
        "Key": "logs/",
        "Region": "eu-west-1",
    }
    assert task["ResultPaths"] == [
        {"Name": "results", "Path": "/results"},
        {"Name": "outputs", "Path": "/outputs"},
    ]
    assert task["Resources"] == {"CPU": "500m", "Memory": "1Gi", "Disk": "10Gb", "GPU": "1"}
    assert task["Network"] == {"Type": "HTTP", "Domains": ["example.com"]}
    assert task["Timeouts"] == {"ExecutionTimeout": 300}
    assert task["Publisher"] == {
        "Type": "s3",
        "Params": {
            "Bucket": "out",
            "Key": "run-1",
            "Region": "us-east-1",
            "Endpoint": "http://minio:9000",
        },
    }


def test_args_are_parameters_and_entrypoint_replaces_the_images() -> None:
    plain = dry_run("ubuntu", "echo", "hello")["Tasks"][0]["Engine"]["Params"]
    assert plain == {"Image": "ubuntu", "Parameters": ["echo", "hello"]}
    image_only = dry_run("ubuntu")["Tasks"][0]["Engine"]["Params"]
    assert image_only == {"Image": "ubuntu"}
    repeated = dry_run("--entrypoint", "sh", "--entrypoint", "-c", "ubuntu", "--", "ls -l")
    params = repeated["Tasks"][0]["Engine"]["Params"]
    assert (params["Entrypoint"], params["Parameters"]) == (["sh", "-c"], ["ls -l"])
    quoted = dry_run("--entrypoint", 'python,-c,"print(1, 2)"', "python:3")
    assert quoted["Tasks"][0]["Engine"]["Params"]["Entrypoint"] == ["python", "-c", "print(1, 2)"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), [("outputs", "/outputs")]),
        (("-o", "outputs:/results"), [("outputs", "/results")]),
        (("-o", "mine:/outputs/"), [("mine", "/outputs/")]),
        # Bacalhau's docs write `--output /outputs:/outputs`: that Name is the folder outputs
        (("-o", "/outputs:/results"), [("/outputs", "/results")]),
        (("-p", "noop"), []),  # nothing to publish to
    ],
)
def test_default_outputs_folder_unless_taken(
    flags: tuple[str, ...], expected: list[tuple[str, str]]
) -> None:
    task = dry_run(*flags, "ubuntu")["Tasks"][0]
    assert [(p["Name"], p["Path"]) for p in task.get("ResultPaths", [])] == expected


def test_network_is_case_insensitive_and_defaults_to_none() -> None:
    assert dry_run("--network", "FULL", "ubuntu")["Tasks"][0]["Network"] == {"Type": "Full"}
    built = build_docker_job(DockerRunSpec(image="ubuntu"))
    assert built.job.task.network.type is NetworkType.NONE


def test_bacalhau_input_and_publisher_forms() -> None:
    assert parse_input("s3://bucket/key,dst=/my/input/path") == InputSource.from_wire(
        {
            "Source": {"Type": "s3", "Params": {"Bucket": "bucket", "Key": "key"}},
            "Target": "/my/input/path",
        }
    )
    assert parse_input("s3://b/logs:/in,opt=region=eu-west-1") == InputSource.from_wire(
        {
            "Source": {
                "Type": "s3",
                "Params": {"Bucket": "b", "Key": "logs", "Region": "eu-west-1"},
            },
            "Target": "/in",
        }
    )
    assert parse_input("file:///data,opt=read-write=true").source.params == LocalParams(
        source_path="/data", read_write=True
    )
    assert parse_publisher("ipfs") == PublisherSpec(type="ipfs")


# -- round trip ------------------------------------------------------------------------------


def test_dry_run_yaml_is_a_job_file_job_run_accepts() -> None:
    text = invoke("docker", "run", "--dry-run", "-e", "A=1", "--cpu", "1", *README_EXAMPLE).stdout
    job = load_job(text, "dry-run").job
    spec = DockerRunSpec(
        image="local/busybox:1",
        args=("sh", "-c", "ls /input > /output_folder/file.txt"),
        inputs=("file:///data/logs:/input",),
        outputs=("apples:/output_folder",),
        env=("A=1",),
        cpu="1",
    )
    assert job == build_docker_job(spec).job
    assert Job.from_wire(yaml.safe_load(text)) == job
    params = DockerParams.from_wire(job.task.engine.params)
    assert params.environment_variables == {"A": "1"}
    again = invoke("job", "run", "--dry-run", "-", stdin=text)
    assert again.exit_code == 0, again.output
    assert again.stdout == text


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "option", "fragment"),
    [
        (("-i", "relative/path"), "--input", "not an absolute path or a URL"),
        (("-i", "ftp://host/x"), "--input", "unsupported scheme 'ftp'"),
        (("-i", "src=/data,opt=colour=blue"), "--input", "unknown option 'colour'"),
        (("-o", "/outputs"), "--output", "NAME:PATH"),
        (("-o", "stdout:/x"), "--output", "not a usable result name"),
        (("--cpu", "fast"), "--cpu", "not a CPU quantity"),
        (("--memory", "lots"), "--memory", "not a size"),
        (("--disk", "big"), "--disk", "not a size"),
        (("--gpu", "two"), "--gpu", "not a GPU count"),
        (("--network", "wifi"), "--network", "'wifi' is not one of"),
        (("-e", "NOVALUE"), "--env", "KEY=VALUE"),
        (("-w", "relative"), "--workdir", "must be an absolute path"),
        (("-p", "dropbox"), "--publisher", "not a publisher"),
        (("-p", "s3://b/k,opt=colour=blue"), "--publisher", "unknown option 'colour'"),
        (("-p", "s3://b/k,opt=compress=maybe"), "--publisher", "is not true or false"),
        (("--count", "0"), "--count", "greater than or equal to 1"),
        (("--entrypoint", "sh\n-c"), "--entrypoint", "cannot be split at commas"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_flag(
    flags: tuple[str, ...], option: str, fragment: str
) -> None:
    result = invoke("docker", "run", *flags, "ubuntu", "echo", "hi")
    assert result.exit_code == 2, result.output
    assert f"'{option}'" in result.stderr
    assert fragment in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_missing_image_shows_usage() -> None:
    result = invoke("docker", "run", "--cpu", "1")
    assert result.exit_code == 2
    assert "IMAGE" in result.stderr


# -- a real submission -----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_submit_to_a_devstack_without_docker_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")  # nobody listens
    app = create_app(poll_interval_s=0.05)
    args = ["docker", "run", "--embedded", "--id-only", "--wait-timeout", "30"]
    result = CliRunner().invoke(app, [*args, "busybox:1", "echo", "hi"])
    assert result.exit_code == 1, result.output
    job_id = result.stdout.strip()
    assert job_id.startswith("j-")
    assert result.stdout == job_id + "\n"
    assert f"job {job_id} failed" in result.stderr
    assert "engine docker not installed" in result.stderr
    assert "Traceback" not in result.output
