"""S3 without a server: where keys land, checksums, published keys, error translation, and
the download progress bar."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console

from cli.progress import BarProgress, download_progress
from compute.publishers.s3 import published_key
from protocol.errors import NotFoundError, TransportError, ValidationError
from protocol.s3 import Listing, S3Object, is_composite, s3_error, sha256_digest
from protocol.s3_download import local_path, plan, verify_sha256


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("logs-2023-04-01.txt", "logs-2023-04", "logs-2023-04-01.txt"),
        ("data/2023/a1.csv", "data/2023/a", "a1.csv"),
        ("data/2023/ab/c.csv", "data/2023/a", "ab/c.csv"),
        ("data/x/y.csv", "data/", "x/y.csv"),
        ("data/x.csv", "data/x.csv", "x.csv"),
        ("dir/sub/f", "dir", "dir/sub/f"),
        ("other/f", "data/", "other/f"),
        ("a//b/./c", "", "a/b/c"),
    ],
)
def test_keys_land_relative_to_the_prefix_folder(key: str, prefix: str, expected: str) -> None:
    assert local_path(key, prefix) == PurePosixPath(expected)


@pytest.mark.parametrize("key", ["data/../../etc/passwd", "../x", "data/..", "/", "data/./"])
def test_keys_that_would_leave_the_folder_are_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="outside the target folder"):
        local_path(key, "data/")


def test_plan_refuses_collisions_and_skips_the_prefix_marker() -> None:
    def listing(*keys: str, prefix: str = "p/") -> Listing:
        return Listing("b", prefix, tuple(S3Object(key, 1) for key in keys))

    planned = plan(listing("p/", "p/a/", "p/a/x"))
    assert [(obj.key, str(path)) for obj, path in planned] == [("p/a/", "a"), ("p/a/x", "a/x")]
    with pytest.raises(ValidationError, match="is a file where 'p/a/x' needs a folder"):
        plan(listing("p/a", "p/a/x"))
    with pytest.raises(ValidationError, match="both land at a"):
        plan(listing("p/a", "p//a"))


def test_checksums_in_hex_base64_and_composite_form(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"body").digest()
    encoded = base64.b64encode(digest).decode()
    assert sha256_digest(digest.hex()) == sha256_digest(digest.hex().upper()) == digest
    assert sha256_digest(encoded) == digest
    for bad in ("", "abc", base64.b64encode(b"short").decode(), "z" * 64):
        with pytest.raises(ValidationError, match="not a SHA-256"):
            sha256_digest(bad)
    assert is_composite(encoded[:-1] + "=-3")
    assert not is_composite(encoded)

    path = tmp_path / "f"
    path.write_bytes(b"body")
    verify_sha256(path, encoded, "", "s3://b/f")
    verify_sha256(path, "abc=-2", "abc=-2", "s3://b/f")
    with pytest.raises(ValidationError, match=r"checksum is xyz=-2, not abc=-2"):
        verify_sha256(path, "abc=-2", "xyz=-2", "s3://b/f")
    with pytest.raises(ValidationError, match=digest.hex()):
        verify_sha256(path, hashlib.sha256(b"other").hexdigest(), "", "s3://b/f")


@pytest.mark.parametrize(
    ("template", "archive", "expected"),
    [
        ("out/{jobID}/{executionID}", True, "out/j-1/e-2.tar.gz"),
        ("out/{nodeID}-{date}-{time}.tar.gz", True, "out/n-3-20240309-070503.tar.gz"),
        ("out/{jobID}", False, "out/j-1/"),
        ("out/", False, "out/"),
        ("", True, "j-1/e-2.tar.gz"),
        ("", False, "j-1/e-2/"),
    ],
)
def test_published_keys_follow_bacalhau(template: str, archive: bool, expected: str) -> None:
    now = datetime(2024, 3, 9, 7, 5, 3, tzinfo=UTC)
    key = published_key(
        template, job_id="j-1", execution_id="e-2", node_id="n-3", now=now, archive=archive
    )
    assert key == expected


def client_error(code: str, status: int) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": f"{code} happened", "BucketName": "bkt"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (client_error("NoSuchBucket", 404), NotFoundError, "S3 bucket 'bkt' does not exist"),
        (client_error("404", 404), NotFoundError, "s3://bkt/k: 404"),
        (client_error("NoSuchVersion", 404), NotFoundError, "NoSuchVersion"),
        (client_error("AccessDenied", 403), ValidationError, "AccessDenied"),
        (client_error("SlowDown", 503), TransportError, "SlowDown"),
        (client_error("InternalError", 500), TransportError, "InternalError"),
        (client_error("InvalidAccessKeyId", 403), TransportError, "InvalidAccessKeyId"),
        (NoCredentialsError(), TransportError, "no AWS credentials on this host"),
        (EndpointConnectionError(endpoint_url="http://x"), TransportError, "http://x"),
    ],
)
def test_boto_errors_become_ours(error: Exception, kind: type[Exception], text: str) -> None:
    translated = s3_error(error, "s3://bkt/k")
    assert type(translated) is kind
    assert text in str(translated)


def test_download_progress_bar_only_on_a_terminal() -> None:
    with download_progress(Console(file=io.StringIO())) as progress:
        assert progress is None

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with download_progress(console) as progress:
        assert isinstance(progress, BarProgress)
        progress.start("s3://bkt/results/", 2048)
        progress.advance(1024)
        progress.advance(1024)
        task = progress._progress.tasks[0]
        assert (task.completed, task.total, task.finished) == (2048, 2048, True)
    assert "s3://bkt/results/" in out.getvalue()


def test_quick_clients_for_bidding_try_once_with_short_timeouts() -> None:
    from protocol.s3 import make_client

    config = make_client("http://127.0.0.1:9", "us-east-1", quick=True).meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 2)
    assert config.retries["total_max_attempts"] == 1
    assert make_client("http://127.0.0.1:9", "us-east-1").meta.config.read_timeout == 60
