"""``s3`` storage: download objects from S3 or an S3-compatible server and mount their folder.

Which objects a source names and where each lands under the target folder follow Bacalhau
(see ``protocol.s3``): ``s3://bucket/logs-2023-04*:/inputs`` puts ``logs-2023-04-01.txt`` at
``/inputs/logs-2023-04-01.txt``, ``s3://bucket/dir/:/inputs`` puts ``dir/a/b.csv`` at
``/inputs/a/b.csv`` and ``s3://bucket/dir/x.csv:/inputs`` puts the object at ``/inputs/x.csv``.

Installed when boto3 finds credentials in its standard chain (environment, ``~/.aws``, an
instance role), as Bacalhau decides; without them every request would be refused, so the node
does not offer S3 and the requester sends S3 jobs elsewhere. The answer is looked up once.
A node-wide S3-compatible endpoint comes from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``.

A missing bucket, object or version, a checksum mismatch, a refused key or more than
``max_bytes`` are ExecutionError; network, throttling and server errors (and missing
credentials) are RetryableExecutionError: another node may well succeed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from compute.executors.base import Mount
from protocol.errors import (
    BacalaoError,
    ExecutionError,
    RetryableExecutionError,
    TransportError,
    ValidationError,
)
from protocol.job import InputSource, SourceSpec
from protocol.s3 import S3Clients, TransferSettings, has_credentials, list_objects
from protocol.s3_download import download
from protocol.specs.sources import S3Params

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 * 1024**3
SIZE_LISTING_MAX_OBJECTS = 10_000


def _params(spec: SourceSpec) -> S3Params:
    try:
        return spec.params_as(S3Params, "Source")
    except ValidationError as exc:
        raise ExecutionError(f"s3: {exc}") from None


def _execution_error(exc: BacalaoError) -> ExecutionError:
    if isinstance(exc, TransportError):
        return RetryableExecutionError(f"s3: {exc}")
    return ExecutionError(f"s3: {exc}")


class S3Storage:
    """Downloads the objects an ``s3`` source names into the staging folder."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        transfer: TransferSettings | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.transfer = transfer or TransferSettings()
        self._clients = S3Clients(max_pool_connections=self.transfer.max_concurrency + 2)
        self._sizing = S3Clients(max_pool_connections=2, quick=True)
        self._installed: bool | None = None

    @property
    def type(self) -> str:
        return "s3"

    def is_installed(self) -> bool:
        if self._installed is None:
            self._installed = has_credentials()
        return self._installed

    def has_locally(self, spec: SourceSpec) -> bool:
        return False

    def size_bytes(self, spec: SourceSpec) -> int | None:
        """The objects' total size from one listing; None when unknown or over 10,000 objects."""
        try:
            params = spec.params_as(S3Params, "Source")
            client = self._sizing.get(params.endpoint, params.region)
            return list_objects(client, params, SIZE_LISTING_MAX_OBJECTS).total_bytes
        except BacalaoError:
            return None

    def prepare(self, source: InputSource, staging_dir: Path) -> Mount:
        params = _params(source.source)
        where = f"s3://{params.bucket}/{params.key}"
        staging_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            client = self._clients.get(params.endpoint, params.region)
            listing = list_objects(client, params)
            if listing.total_bytes > self.max_bytes:
                raise ExecutionError(
                    f"s3: {where} is {listing.total_bytes} bytes, over the limit of "
                    f"{self.max_bytes} bytes"
                )
            files = download(client, listing, staging_dir, self.transfer)
        except ExecutionError:
            raise
        except BacalaoError as exc:
            raise _execution_error(exc) from None
        log.info(
            "event=s3_downloaded source=%s objects=%d files=%d size_bytes=%d target=%s "
            "duration_s=%.3f",
            where,
            len(listing.objects),
            len(files),
            listing.total_bytes,
            source.target,
            time.monotonic() - started,
        )
        return Mount(source=staging_dir, target=source.target, read_only=True)
