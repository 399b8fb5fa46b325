"""``s3`` publisher: upload an execution's results folder to S3 or an S3-compatible server.

As Bacalhau: ``Key`` may hold the placeholders ``{jobID}``, ``{executionID}``, ``{nodeID}``,
``{date}`` (YYYYMMDD) and ``{time}`` (HHMMSS); we take the date and time in UTC. With
``Compress`` the folder goes up as one gzip'd tarball at ``<Key>.tar.gz`` (the suffix is added
unless present), holding only members ``bacalao job get`` accepts
(:func:`compute.publishers.archive.write_archive`); without it every regular file goes up as
its own object under ``<Key>/`` (symlinks, FIFOs and devices are skipped with a warning).
Bacalhau requires a Key; when it is empty we use ``{jobID}/{executionID}``. ``Compress``
defaults to false, as in Bacalhau.

The returned result spec is an ``s3`` source spec (Bucket, Key, Endpoint, Region and, for a
tarball, its VersionID and base64 ChecksumSHA256) that ``download_result`` fetches. A node-wide
endpoint set by ``AWS_ENDPOINT_URL_S3`` is written into the spec, so clients find the results.
Installed when boto3 finds credentials, like the ``s3`` storage provider.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import create_transfer_manager

from compute.publishers.archive import write_archive
from protocol.errors import (
    BacalaoError,
    ExecutionError,
    RetryableExecutionError,
    TransportError,
    ValidationError,
)
from protocol.job import PublisherSpec, SpecConfig
from protocol.s3 import (
    S3_ERRORS,
    S3Clients,
    TransferSettings,
    effective_endpoint,
    has_credentials,
    s3_error,
    s3_url,
)
from protocol.s3_download import file_sha256
from protocol.specs.publishers import S3PublisherParams
from protocol.specs.sources import S3Params

log = logging.getLogger(__name__)

DEFAULT_KEY = "{jobID}/{executionID}"
ARCHIVE_SUFFIX = ".tar.gz"


def published_key(
    template: str, *, job_id: str, execution_id: str, node_id: str, now: datetime, archive: bool
) -> str:
    """The object key (``archive``) or folder key the results go to."""
    key = template or DEFAULT_KEY
    if archive and not key.endswith(ARCHIVE_SUFFIX):
        key += ARCHIVE_SUFFIX
    if not archive and not key.endswith("/"):
        key += "/"
    for placeholder, value in (
        ("{nodeID}", node_id),
        ("{executionID}", execution_id),
        ("{jobID}", job_id),
        ("{date}", now.strftime("%Y%m%d")),
        ("{time}", now.strftime("%H%M%S")),
    ):
        key = key.replace(placeholder, value)
    return key


def _params(spec: PublisherSpec) -> S3PublisherParams:
    try:
        return spec.params_as(S3PublisherParams, "Publisher")
    except ValidationError as exc:
        raise ExecutionError(f"s3 publisher: {exc}") from None


def _kind(mode: int) -> str:
    for is_kind, kind in _KINDS:
        if is_kind(mode):
            return kind
    return "special file"


_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def _files(results_dir: Path) -> list[Path]:
    """Regular files under ``results_dir``, sorted. Nothing else is uploaded: symlinks are
    not followed, and opening a FIFO would block the upload for good."""
    found = []
    for folder, dirs, names in os.walk(results_dir):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):
                log.warning("event=s3_publish_skipped path=%s kind=%r", path, _kind(mode))
                continue
            found.append(path)
    return found


class S3Publisher:
    """Uploads results with the boto3 transfer manager."""

    def __init__(
        self,
        node_id: str = "",
        transfer: TransferSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.node_id = node_id
        self.transfer = transfer or TransferSettings()
        self._clients = S3Clients(max_pool_connections=self.transfer.max_concurrency + 2)
        self._clock = clock
        self._installed: bool | None = None

    @property
    def type(self) -> str:
        return "s3"

    @property
    def reads_results(self) -> bool:
        return True

    def is_installed(self) -> bool:
        if self._installed is None:
            self._installed = has_credentials()
        return self._installed

    def publish(
        self, spec: PublisherSpec, job_id: str, execution_id: str, results_dir: Path
    ) -> SpecConfig | None:
        params = _params(spec)
        if not results_dir.is_dir():
            raise ExecutionError(f"s3 publisher: results folder {results_dir} does not exist")
        key = published_key(
            params.key.strip(),
            job_id=job_id,
            execution_id=execution_id,
            node_id=self.node_id,
            now=self._clock(),
            archive=params.compress,
        )
        where = s3_url(params.bucket, key)
        try:
            client = self._clients.get(params.endpoint, params.region)
            result = S3Params(
                bucket=params.bucket,
                key=key,
                endpoint=effective_endpoint(params.endpoint),
                region=params.region or str(client.meta.region_name or ""),
            )
            if params.compress:
                result = self._upload_archive(client, results_dir, result)
            else:
                self._upload_folder(client, results_dir, result)
        except BacalaoError as exc:
            if isinstance(exc, TransportError):
                raise RetryableExecutionError(f"s3 publisher: {exc}") from None
            raise ExecutionError(f"s3 publisher: {exc}") from None
        except OSError as exc:
            raise RetryableExecutionError(
                f"s3 publisher: cannot read {results_dir} for {where}: {exc}"
            ) from None
        log.info(
            "event=s3_published job_id=%s execution_id=%s url=%s compressed=%s",
            job_id,
            execution_id,
            where,
            params.compress,
        )
        return SpecConfig(type="s3", params=result.to_wire())

    def _upload_archive(self, client: Any, results_dir: Path, result: S3Params) -> S3Params:
        """One tarball of the folder's contents; the spec gains its version and checksum."""
        with tempfile.TemporaryDirectory(prefix=".s3-publish-", dir=results_dir.parent) as tmp:
            archive = Path(tmp) / "results.tar.gz"
            write_archive(results_dir, archive)
            checksum = base64.b64encode(file_sha256(archive)).decode()
            self._upload(client, [(archive, result.key)], result.bucket, "application/gzip")
            try:
                head = client.head_object(Bucket=result.bucket, Key=result.key)
            except S3_ERRORS as exc:
                raise s3_error(exc, s3_url(result.bucket, result.key)) from None
        version = str(head.get("VersionId") or "")
        return result.model_copy(
            update={"checksum_sha256": checksum, "version_id": "" if version == "null" else version}
        )

    def _upload_folder(self, client: Any, results_dir: Path, result: S3Params) -> None:
        uploads = [
            (path, result.key + path.relative_to(results_dir).as_posix())
            for path in _files(results_dir)
        ]
        self._upload(client, uploads, result.bucket, "")

    def _upload(
        self, client: Any, uploads: list[tuple[Path, str]], bucket: str, content_type: str
    ) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        with create_transfer_manager(client, self.transfer.config()) as manager:
            futures = [
                (key, manager.upload(str(path), bucket, key, extra_args=extra))
                for path, key in uploads
            ]
            for key, future in futures:
                try:
                    future.result()
                except S3_ERRORS as exc:
                    raise s3_error(exc, s3_url(bucket, key)) from None
