"""The ``s3`` storage provider, the ``s3`` publisher and ``download_result`` of S3 results,
against a real S3 API (moto_server on 127.0.0.1); and one wasm job through a devstack that
reads its input from S3, publishes to S3 and is fetched with ``bacalao job get``."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.devstack import Devstack
from cli.main import app
from cli.stack import NodeOptions
from compute.publishers.s3 import S3Publisher
from compute.storage.s3 import S3Storage
from protocol.errors import (
    ExecutionError,
    NotFoundError,
    RetryableExecutionError,
    TransportError,
)
from protocol.job import InputSource, PublisherSpec, SourceSpec, SpecConfig
from protocol.results import download_result
from protocol.s3 import MIB, TransferSettings, list_objects, make_client
from protocol.s3_download import download
from protocol.specs.sources import S3Params
from tests.support.files import files_under
from tests.support.jobs import run_job, wasm_job
from tests.support.progress import RecordingProgress
from tests.support.s3_server import S3Server
from tests.support.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
CAT_WAT = REPO / "tests" / "fixtures" / "wasm" / "cat.wat"
SMALL_PARTS = TransferSettings(
    multipart_threshold_bytes=5 * MIB, multipart_chunksize_bytes=5 * MIB, max_concurrency=4
)
NOW = datetime(2024, 3, 9, 7, 5, 3, tzinfo=UTC)
# Shared so that their clients are made once (making one takes ~0.2 s).
STORAGE = S3Storage(transfer=SMALL_PARTS)
PUBLISHER = S3Publisher("n-node1", transfer=SMALL_PARTS, clock=lambda: NOW)
TREE = {
    "logs-2023-04-01.txt": b"april 1\n",
    "logs-2023-04-02.txt": b"april 2\n",
    "logs-2023-05-01.txt": b"may 1\n",
    "data/2023/a1.csv": b"a,1\n",
    "data/2023/ab/c.csv": b"c,2\n",
    "data/2023/b.csv": b"b,3\n",
    "data/2023/notes.md": b"# notes\n",
    "data/readme.txt": b"read me\n",
}


def put(server: S3Server, bucket: str, objects: dict[str, bytes]) -> None:
    client = server.client()
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def source(server: S3Server, bucket: str, key: str, **params: str) -> InputSource:
    spec = {"Bucket": bucket, "Key": key, "Endpoint": server.endpoint, **params}
    return InputSource(source=SourceSpec(type="s3", params=spec), target="/inputs")


def stage(server: S3Server, tmp_path: Path, bucket: str, key: str, **params: str) -> Path:
    """Prepare an s3 input as the runner does; returns the mounted folder."""
    staging = tmp_path / "staging"
    mount = STORAGE.prepare(source(server, bucket, key, **params), staging)
    assert mount.target == "/inputs"
    assert mount.read_only
    return mount.source


@pytest.fixture
def tree(s3_env: S3Server) -> str:
    bucket = s3_env.bucket()
    put(s3_env, bucket, TREE)
    return bucket


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "exec" / "results"
    (folder / "outputs" / "nested").mkdir(parents=True)
    (folder / "empty").mkdir()
    (folder / "stdout").write_text("hello\n")
    (folder / "stderr").write_text("")
    (folder / "exitCode").write_text("0")
    (folder / "outputs" / "nested" / "data.bin").write_bytes(bytes(range(256)) * 10)
    return folder


# -- which objects a source names, and where they land -----------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("logs-2023-04*", ["logs-2023-04-01.txt", "logs-2023-04-02.txt"]),
        ("data/2023/a*", ["a1.csv", "ab/c.csv"]),
        ("data/", ["2023/a1.csv", "2023/ab/c.csv", "2023/b.csv", "2023/notes.md", "readme.txt"]),
        ("data/2023/ab/", ["c.csv"]),
        ("data/2023/b.csv", ["b.csv"]),
        ("data/2023", ["2023/a1.csv", "2023/ab/c.csv", "2023/b.csv", "2023/notes.md"]),
        ("", sorted(TREE)),
    ],
)
def test_keys_select_objects_and_keep_their_layout(
    s3_env: S3Server, tree: str, tmp_path: Path, key: str, expected: list[str]
) -> None:
    staged = stage(s3_env, tmp_path, tree, key)
    found = files_under(staged)
    assert sorted(found) == expected
    for relative, body in found.items():
        assert body in TREE.values(), relative
    if key == "data/2023/b.csv":
        assert found["b.csv"] == b"b,3\n"


@pytest.mark.parametrize(
    ("key", "pattern", "expected"),
    [
        ("data/", r"\.csv$", ["2023/a1.csv", "2023/ab/c.csv", "2023/b.csv"]),
        ("data/", r"^2023/[^/]+$", ["2023/a1.csv", "2023/b.csv", "2023/notes.md"]),
        ("logs-*", r"-04-", ["logs-2023-04-01.txt", "logs-2023-04-02.txt"]),
    ],
)
def test_filter_is_a_regex_on_the_key_after_the_prefix(
    s3_env: S3Server, tree: str, tmp_path: Path, key: str, pattern: str, expected: list[str]
) -> None:
    staged = stage(s3_env, tmp_path, tree, key, Filter=pattern)
    assert sorted(files_under(staged)) == expected


def test_size_bytes_sums_the_listing(s3_env: S3Server, tree: str) -> None:
    storage = S3Storage()
    spec = source(s3_env, tree, "data/2023/").source
    assert storage.size_bytes(spec) == sum(
        len(body) for key, body in TREE.items() if key.startswith("data/2023/")
    )
    assert storage.size_bytes(source(s3_env, "no-such-bucket-x", "k").source) is None
    assert not storage.has_locally(spec)


def test_installed_with_credentials(s3_env: S3Server) -> None:
    assert S3Storage().is_installed()
    assert S3Publisher().is_installed()


@pytest.mark.usefixtures("no_aws_credentials")
def test_not_installed_without_credentials() -> None:
    assert not S3Storage().is_installed()
    assert not S3Publisher().is_installed()


def test_inputs_over_the_size_limit_are_refused(
    s3_env: S3Server, tree: str, tmp_path: Path
) -> None:
    spec = source(s3_env, tree, "data/")
    with pytest.raises(ExecutionError, match="over the limit of 10 bytes"):
        S3Storage(max_bytes=10).prepare(spec, tmp_path)


# -- versions, checksums, big objects ----------------------------------------------------


def test_version_id_pins_an_old_version(s3_env: S3Server, tmp_path: Path) -> None:
    bucket = s3_env.bucket(versioned=True)
    client = s3_env.client()
    first = client.put_object(Bucket=bucket, Key="doc.txt", Body=b"first\n")["VersionId"]
    client.put_object(Bucket=bucket, Key="doc.txt", Body=b"second\n")

    pinned = stage(s3_env, tmp_path / "a", bucket, "doc.txt", VersionID=first)
    latest = stage(s3_env, tmp_path / "b", bucket, "doc.txt")

    assert files_under(pinned) == {"doc.txt": b"first\n"}
    assert files_under(latest) == {"doc.txt": b"second\n"}
    with pytest.raises(ExecutionError, match="no version 'nope'") as caught:
        stage(s3_env, tmp_path / "c", bucket, "doc.txt", VersionID="nope")
    assert not isinstance(caught.value, RetryableExecutionError)


def test_checksum_is_verified_in_hex_and_base64(s3_env: S3Server, tmp_path: Path) -> None:
    bucket = s3_env.bucket()
    body = b"checked content\n"
    put(s3_env, bucket, {"sum/file.bin": body})
    digest = hashlib.sha256(body).digest()

    hexed = stage(s3_env, tmp_path / "hex", bucket, "sum/file.bin", ChecksumSHA256=digest.hex())
    b64 = base64.b64encode(digest).decode()
    based = stage(s3_env, tmp_path / "b64", bucket, "sum/file.bin", ChecksumSHA256=b64)

    assert files_under(hexed) == files_under(based) == {"file.bin": body}


@pytest.mark.parametrize(
    ("key", "checksum", "message"),
    [
        ("sum/file.bin", hashlib.sha256(b"other").hexdigest(), "SHA-256 of the downloaded"),
        ("sum/file.bin", "not-a-checksum", "not a SHA-256 in hex or base64"),
        ("sum/", hashlib.sha256(b"x").hexdigest(), "needs the key of one object"),
    ],
)
def test_bad_checksums_fail_the_execution(
    s3_env: S3Server, tmp_path: Path, key: str, checksum: str, message: str
) -> None:
    bucket = s3_env.bucket()
    put(s3_env, bucket, {"sum/file.bin": b"content\n"})
    with pytest.raises(ExecutionError, match=message) as caught:
        stage(s3_env, tmp_path, bucket, key, ChecksumSHA256=checksum)
    assert not isinstance(caught.value, RetryableExecutionError)


def test_multipart_sized_object_downloads_in_ranged_parts(s3_env: S3Server, tmp_path: Path) -> None:
    bucket = s3_env.bucket()
    body = os.urandom(12 * MIB)
    put(s3_env, bucket, {"big/blob.bin": body})
    digest = hashlib.sha256(body).hexdigest()

    staged = stage(s3_env, tmp_path / "stage", bucket, "big/blob.bin", ChecksumSHA256=digest)
    assert (staged / "blob.bin").read_bytes() == body

    ranges: list[str] = []
    lock = threading.Lock()

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        with lock:
            ranges.append(str(params.get("Range", "")))

    client = make_client(s3_env.endpoint)
    client.meta.events.register("provide-client-params.s3.GetObject", record)
    listing = list_objects(client, S3Params(bucket=bucket, key="big/blob.bin"))
    download(client, listing, tmp_path / "direct", SMALL_PARTS)
    assert (tmp_path / "direct" / "blob.bin").read_bytes() == body
    assert len(ranges) == 3, ranges  # 12 MiB in 5 MiB parts
    assert all(value.startswith("bytes=") for value in ranges)


# -- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "key", "message"),
    [
        ("missing-bucket-s3test", "data/x.csv", "S3 bucket 'missing-bucket-s3test' does not"),
        ("missing-bucket-s3test", "data/", "S3 bucket 'missing-bucket-s3test' does not"),
        (None, "data/2023/zzz.csv", "s3://{bucket}/data/2023/zzz.csv: no object in bucket"),
        (None, "nothing-here*", "s3://{bucket}/nothing-here\\*: no object in bucket"),
    ],
)
def test_missing_buckets_and_keys_are_clear_execution_errors(
    s3_env: S3Server, tree: str, tmp_path: Path, bucket: str | None, key: str, message: str
) -> None:
    bucket = bucket or tree
    with pytest.raises(ExecutionError, match=message.format(bucket=bucket)) as caught:
        stage(s3_env, tmp_path, bucket, key)
    assert not isinstance(caught.value, RetryableExecutionError)


def test_unreachable_endpoint_is_retryable(
    s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    spec = {"Bucket": "any-bucket", "Key": "k", "Endpoint": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(RetryableExecutionError, match="s3://any-bucket/k"):
        S3Storage().prepare(InputSource(source=SourceSpec(type="s3", params=spec)), tmp_path)


# -- the publisher, and download_result --------------------------------------------------


def publish(server: S3Server, results: Path, bucket: str, key: str, compress: bool) -> SpecConfig:
    spec = PublisherSpec(
        type="s3",
        params={"Bucket": bucket, "Key": key, "Endpoint": server.endpoint, "Compress": compress},
    )
    published = PUBLISHER.publish(spec, "j-1", "e-2", results)
    assert published is not None
    return published


def test_compressed_publish_is_one_tarball_at_the_templated_key(
    s3_env: S3Server, results: Path, tmp_path: Path
) -> None:
    bucket = s3_env.bucket()
    key = "runs/{jobID}/{executionID}-{nodeID}-{date}-{time}"
    published = publish(s3_env, results, bucket, key, compress=True)

    expected_key = "runs/j-1/e-2-n-node1-20240309-070503.tar.gz"
    listed = s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [expected_key]
    assert published.type == "s3"
    assert published.params["Bucket"] == bucket
    assert published.params["Key"] == expected_key
    assert published.params["Endpoint"] == s3_env.endpoint
    assert published.params["Region"] == "us-east-1"
    body = s3_env.client().get_object(Bucket=bucket, Key=expected_key)["Body"].read()
    expected_sum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert published.params["ChecksumSHA256"] == expected_sum

    dest = tmp_path / "downloaded"
    download_result(published, dest)
    assert files_under(dest) == files_under(results)
    assert (dest / "empty").is_dir()  # a tarball keeps empty folders


def test_plain_publish_is_one_object_per_file(
    s3_env: S3Server, results: Path, tmp_path: Path
) -> None:
    bucket = s3_env.bucket()
    published = publish(s3_env, results, bucket, "plain/{jobID}", compress=False)

    listed = s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "plain/j-1/exitCode",
        "plain/j-1/outputs/nested/data.bin",
        "plain/j-1/stderr",
        "plain/j-1/stdout",
    ]
    assert published.params["Key"] == "plain/j-1/"

    dest = tmp_path / "downloaded"
    download_result(published, dest)
    assert files_under(dest) == files_under(results)


def unblock_fifo_reader(fifo: Path) -> None:
    """Let a reader blocked opening ``fifo`` go on: open and close its writing end."""
    with contextlib.suppress(OSError):  # ENXIO: no reader waiting
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.timeout(30)
def test_plain_publish_skips_fifos_instead_of_blocking(s3_env: S3Server, results: Path) -> None:
    fifo = results / "outputs" / "pipe"
    os.mkfifo(fifo)
    bucket = s3_env.bucket()
    outcome: list[SpecConfig | BaseException] = []

    def run() -> None:
        try:
            outcome.append(publish(s3_env, results, bucket, "fifo/", compress=False))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        unblock_fifo_reader(fifo)
        worker.join(10)
        pytest.fail("publishing a results folder that holds a FIFO blocked on the FIFO")
    assert [type(item) for item in outcome] == [SpecConfig], outcome
    listed = s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "fifo/exitCode",
        "fifo/outputs/nested/data.bin",
        "fifo/stderr",
        "fifo/stdout",
    ]


def test_compressed_publish_leaves_out_members_job_get_refuses(
    s3_env: S3Server, results: Path, tmp_path: Path
) -> None:
    (results / "outputs" / "link").symlink_to("/etc/passwd")
    os.mkfifo(results / "outputs" / "pipe")
    bucket = s3_env.bucket()
    published = publish(s3_env, results, bucket, "unsafe", compress=True)

    dest = tmp_path / "downloaded"
    download_result(published, dest)
    assert files_under(dest) == {
        "exitCode": b"0",
        "outputs/nested/data.bin": bytes(range(256)) * 10,
        "stderr": b"",
        "stdout": b"hello\n",
    }
    assert not (dest / "outputs" / "link").is_symlink()
    assert not (dest / "outputs" / "pipe").exists()


def test_default_key_and_versioned_results(s3_env: S3Server, results: Path, tmp_path: Path) -> None:
    bucket = s3_env.bucket(versioned=True)
    first = publish(s3_env, results, bucket, "", compress=True)
    assert first.params["Key"] == "j-1/e-2.tar.gz"
    assert first.params["VersionID"]
    (results / "stdout").write_text("changed\n")
    second = publish(s3_env, results, bucket, "", compress=True)
    assert second.params["VersionID"] != first.params["VersionID"]

    download_result(first, tmp_path / "first")
    download_result(second, tmp_path / "second")
    assert (tmp_path / "first" / "stdout").read_text() == "hello\n"
    assert (tmp_path / "second" / "stdout").read_text() == "changed\n"


def test_multipart_plain_publish_round_trips(
    s3_env: S3Server, results: Path, tmp_path: Path
) -> None:
    bucket = s3_env.bucket()
    big = os.urandom(12 * MIB)
    (results / "outputs" / "big.bin").write_bytes(big)
    published = publish(s3_env, results, bucket, "big/", compress=False)

    dest = tmp_path / "downloaded"
    download_result(published, dest)
    assert (dest / "outputs" / "big.bin").read_bytes() == big


def test_publish_to_a_missing_bucket_fails_clearly(s3_env: S3Server, results: Path) -> None:
    with pytest.raises(ExecutionError, match="no-such-results-bucket") as caught:
        publish(s3_env, results, "no-such-results-bucket", "k", compress=True)
    assert not isinstance(caught.value, RetryableExecutionError)


def test_node_wide_endpoint_from_the_environment(
    s3_env: S3Server, results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env.endpoint)
    bucket = s3_env.bucket()
    put(s3_env, bucket, {"in/x.txt": b"x\n"})
    spec = SourceSpec(type="s3", params={"Bucket": bucket, "Key": "in/"})
    mount = S3Storage().prepare(InputSource(source=spec, target="/in"), tmp_path / "staged")
    assert files_under(mount.source) == {"x.txt": b"x\n"}

    publish_spec = PublisherSpec(type="s3", params={"Bucket": bucket, "Key": "out"})
    published = S3Publisher().publish(publish_spec, "j-1", "e-2", results)
    assert published is not None
    assert published.params["Endpoint"] == s3_env.endpoint  # clients find the results too


def test_download_result_reports_progress(s3_env: S3Server, results: Path, tmp_path: Path) -> None:
    bucket = s3_env.bucket()
    published = publish(s3_env, results, bucket, "progress/", compress=False)
    progress = RecordingProgress()
    download_result(published, tmp_path / "dest", progress=progress)
    total = sum(len(body) for body in files_under(results).values())
    assert progress.started == [(f"s3://{bucket}/progress/", total)]
    assert progress.received_bytes == total


def test_download_result_errors(s3_env: S3Server, tmp_path: Path) -> None:
    bucket = s3_env.bucket()
    where = {"Bucket": bucket, "Endpoint": s3_env.endpoint}
    gone = SpecConfig(type="s3", params={**where, "Key": "gone.tar.gz"})
    with pytest.raises(NotFoundError, match=r"gone\.tar\.gz"):
        download_result(gone, tmp_path / "a")
    put(s3_env, bucket, {"r/big": b"x" * 100})
    spec = SpecConfig(type="s3", params={**where, "Key": "r/"})
    with pytest.raises(TransportError, match="larger than 10"):
        download_result(spec, tmp_path / "b", max_bytes=10)


# -- a wasm job through a devstack -------------------------------------------------------


@pytest.fixture(scope="module")
def devstack(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.env.items():
            patch.setenv(name, value)
        options = NodeOptions(
            name="requester",
            data_dir=tmp_path_factory.mktemp("s3-devstack"),
            api_port=0,
            heartbeat_interval_s=0.2,
        )
        with Devstack(options, compute_nodes=1) as stack:
            yield stack


def cat_job(server: S3Server, bucket: str, input_key: str, compress: bool) -> dict[str, Any]:
    job = wasm_job(
        CAT_WAT,
        args=["/inputs/in.txt", "/outputs/copy.txt"],
        ResultPaths=[{"Name": "outputs", "Path": "/outputs"}],
        Publisher={
            "Type": "s3",
            "Params": {
                "Bucket": bucket,
                "Key": "results/{jobID}/{executionID}",
                "Endpoint": server.endpoint,
                "Compress": compress,
            },
        },
    )
    job["Tasks"][0]["InputSources"].append(
        {
            "Source": {
                "Type": "s3",
                "Params": {"Bucket": bucket, "Key": input_key, "Endpoint": server.endpoint},
            },
            "Target": "/inputs",
        }
    )
    return job


@pytest.mark.parametrize("compress", [True, False])
def test_wasm_job_reads_from_and_publishes_to_s3(
    s3_env: S3Server, devstack: Devstack, tmp_path: Path, compress: bool
) -> None:
    bucket = s3_env.bucket()
    put(s3_env, bucket, {"inputs/in.txt": b"from s3\n"})

    job = run_job(devstack.api_port, cat_job(s3_env, bucket, "inputs/in.txt", compress))
    assert job["State"]["StateType"] == "Completed", job

    keys = [item["Key"] for item in s3_env.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(key.startswith(f"results/{job['ID']}/e-") for key in keys), keys
    out = tmp_path / "out"
    cli = CliRunner().invoke(
        app,
        ["job", "get", job["ID"], "--output-dir", str(out), "--api-port", str(devstack.api_port)],
    )
    assert cli.exit_code == 0, cli.output
    assert (out / "outputs" / "copy.txt").read_text() == "from s3\n"
    assert (out / "exitCode").read_text() == "0"


def test_wasm_job_with_a_missing_input_bucket_fails_with_a_clear_reason(
    s3_env: S3Server, devstack: Devstack
) -> None:
    job = run_job(
        devstack.api_port, cat_job(s3_env, "no-such-input-bucket", "in.txt", compress=True)
    )
    assert job["State"]["StateType"] == "Failed"
    messages = [e["ComputeState"]["Message"] for e in job["executions"]]
    assert any("S3 bucket 'no-such-input-bucket' does not exist" in m for m in messages), messages
