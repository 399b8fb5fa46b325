"""Data crossing storage systems through a devstack, driven as a user drives it: a wasm job that
reads a prefix glob of S3 objects and publishes to IPFS, and one that reads an IPFS folder and
publishes a compressed tarball to S3; each submitted with ``bacalao wasm run`` and fetched
with ``bacalao job get``. Real servers: moto (S3) and js-ipfs (in its own network namespace).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from cli.client import APIClient
from cli.devstack import Devstack
from cli.main import create_app
from cli.stack import NodeOptions
from protocol.job import SpecConfig
from tests.support.files import files_under
from tests.support.ipfs_server import IPFSNode
from tests.support.s3_server import S3Server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
CAT_WAT = ROOT / "tests" / "fixtures" / "wasm" / "cat.wat"
LOGS = {
    "logs-2023-04-01.txt": b"april 1\n",
    "logs-2023-04-02.txt": b"april 2\n",
    "logs-2023-05-01.txt": b"may 1\n",
}


@pytest.fixture(scope="module")
def stack(
    s3_server: S3Server, ipfs_node: IPFSNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devstack]:
    """One requester and one compute node that reach both the S3 server (AWS environment of
    this process) and the IPFS daemon."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.env.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        options = NodeOptions(
            name="requester",
            data_dir=tmp_path_factory.mktemp("crossing"),
            api_port=0,
            local_publisher_port=0,
            heartbeat_interval_s=0.2,
            ipfs_api=ipfs_node.api_multiaddr,
        )
        with Devstack(options, compute_nodes=1) as devstack:
            yield devstack


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return create_app(poll_interval_s=0.05)


def bacalao(app: typer.Typer, *args: str) -> Result:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"bacalao {' '.join(args)}:\n{result.output}"
    return result


def run_cat(app: typer.Typer, stack: Devstack, *flags: str, args: list[str]) -> str:
    """``bacalao wasm run FLAGS cat.wat -- ARGS`` until the job completes; returns its ID."""
    result = bacalao(
        app,
        "wasm", "run", "--api-port", str(stack.api_port), "--id-only", "--wait-timeout", "60",
        "-o", "outputs:/outputs", *flags, str(CAT_WAT), "--", *args,
    )  # fmt: skip
    job_id = result.stdout.strip()
    assert job_id.startswith("j-"), result.output
    return job_id


def published(stack: Devstack, job_id: str) -> SpecConfig:
    with APIClient("127.0.0.1", stack.api_port) as client:
        (spec,) = client.results(job_id)
    return spec


def test_s3_prefix_glob_in_ipfs_out(
    app: typer.Typer, stack: Devstack, s3_env: S3Server, ipfs_node: IPFSNode, tmp_path: Path
) -> None:
    bucket = s3_env.bucket()
    client = s3_env.client()
    for key, body in LOGS.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)

    job_id = run_cat(
        app,
        stack,
        "-i", f"s3://{bucket}/logs-2023-04*:/input,opt=endpoint={s3_env.endpoint}",
        "-p", "ipfs",
        args=["/input/logs-2023-04-01.txt", "/input/logs-2023-04-02.txt", "/outputs/april.txt"],
    )  # fmt: skip

    spec = published(stack, job_id)
    assert spec.type == "ipfs"
    cid = spec.params["CID"]
    assert cid in ipfs_node.client().pin.ls(cid)["Keys"]  # the result stays on the IPFS node
    out = tmp_path / "results"
    bacalao(
        app,
        "job", "get", job_id, "--output-dir", str(out), "--api-port", str(stack.api_port),
        "--ipfs-connect", ipfs_node.api_multiaddr,
    )  # fmt: skip
    assert files_under(out) == {
        "exitCode": b"0",
        "stderr": b"",
        "stdout": b"",
        "outputs/april.txt": b"april 1\napril 2\n",
    }


def test_ipfs_folder_in_compressed_s3_out(
    app: typer.Typer, stack: Devstack, s3_env: S3Server, ipfs_node: IPFSNode, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "nested").mkdir(parents=True)
    (dataset / "a.txt").write_text("first\n")
    (dataset / "nested" / "b.txt").write_text("second\n")
    added = ipfs_node.client().add(str(dataset), recursive=True)
    cid = next(str(entry["Hash"]) for entry in added if entry["Name"] == dataset.name)
    bucket = s3_env.bucket()
    publisher = f"s3://{bucket}/results/{{jobID}},opt=endpoint={s3_env.endpoint},opt=compress=true"

    job_id = run_cat(
        app,
        stack,
        "-i", f"ipfs://{cid}:/inputs",
        "-p", publisher,
        args=["/inputs/a.txt", "/inputs/nested/b.txt", "/outputs/both.txt"],
    )  # fmt: skip

    spec = published(stack, job_id)
    assert spec.type == "s3"
    assert spec.params["Key"] == f"results/{job_id}.tar.gz"
    listed = s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"results/{job_id}.tar.gz"]
    out = tmp_path / "results"
    bacalao(app, "job", "get", job_id, "--output-dir", str(out), "--api-port", str(stack.api_port))
    assert files_under(out) == {
        "exitCode": b"0",
        "stderr": b"",
        "stdout": b"",
        "outputs/both.txt": b"first\nsecond\n",
    }
