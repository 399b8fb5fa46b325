"""S3 and S3-compatible servers through boto3: clients, error translation, and which objects
a spec names (``protocol.s3_download`` puts them on disk).

Shared by the ``s3`` storage provider, the ``s3`` publisher and ``download_result``. Importing
this module imports boto3, so the CLI imports it only when it downloads an S3 result.

Which objects ``S3Params`` names (Bacalhau's rules):

- ``Key`` ends in ``*``: every object whose key starts with the rest (``logs-2023-04*``);
- ``Key`` ends in ``/``, or is empty: every object under that folder (or in the bucket);
- otherwise the one object ``Key``; ``VersionID`` pins a version and ``ChecksumSHA256`` (hex,
  or base64 as S3 reports it) is checked against the downloaded bytes. A key that names no
  object but has objects under ``Key/`` is taken as that folder, folder name included.

``Filter``, a regular expression searched in each key after the listed prefix, narrows a
listing.

Credentials come from boto3's standard chain (``AWS_ACCESS_KEY_ID``..., ``~/.aws``, instance
roles); an endpoint from the spec or ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` selects an
S3-compatible server, addressed path-style (``http://host:port/bucket/key``).

Errors: NotFoundError (no such bucket, object or version; nothing matches), ValidationError (a
spec that cannot be honoured: refused keys, checksum mismatch, access denied, bad request),
TransportError (worth another try: network, throttling, server errors, missing credentials).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from s3transfer.exceptions import RetriesExceededError

from protocol.errors import BacalaoError, NotFoundError, TransportError, ValidationError
from protocol.specs.sources import S3Params

MIB = 1024 * 1024
ENDPOINT_ENV_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
DIRECTORY_CONTENT_TYPE = "application/x-directory"
MISSING_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NoSuchVersion", "NotFound", "404"})
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
    }
)
S3_ERRORS = (ClientError, BotoCoreError, RetriesExceededError)
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class TransferSettings:
    """How the transfer manager splits and parallelises transfers."""

    multipart_threshold_bytes: int = 8 * MIB
    multipart_chunksize_bytes: int = 8 * MIB
    max_concurrency: int = 4

    def config(self) -> Any:
        return TransferConfig(
            multipart_threshold=self.multipart_threshold_bytes,
            multipart_chunksize=self.multipart_chunksize_bytes,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )


@dataclass(frozen=True)
class S3Object:
    key: str
    size_bytes: int
    version_id: str = ""
    checksum_sha256: str = ""  # as the server reports it: base64, "...-N" when multipart

    @property
    def is_folder(self) -> bool:
        return self.key.endswith("/")


@dataclass(frozen=True)
class Listing:
    """The objects a spec names, and the prefix their local paths are relative to."""

    bucket: str
    prefix: str
    objects: tuple[S3Object, ...]
    single: bool = False
    expected_sha256: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(obj.size_bytes for obj in self.objects)


def s3_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def effective_endpoint(endpoint: str = "") -> str:
    """The spec's endpoint, else the one boto3 takes from the environment, else ''."""
    return endpoint or next((os.environ[n] for n in ENDPOINT_ENV_VARS if os.environ.get(n)), "")


def make_client(
    endpoint: str = "",
    region: str = "",
    max_pool_connections: int = 10,
    session: Any = None,
    quick: bool = False,
) -> Any:
    """An S3 client; path-style and checksums only when required for S3-compatible servers.
    Retries follow boto3's standard mode (``AWS_MAX_ATTEMPTS`` or 3 attempts). ``quick``
    clients (for a size estimate while bidding) try once, with 2 s timeouts."""
    endpoint = effective_endpoint(endpoint)
    options: dict[str, Any] = {
        "retries": {"mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 60,
        "max_pool_connections": max_pool_connections,
    }
    if quick:
        options.update(
            retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=2
        )
    if endpoint:
        options["s3"] = {"addressing_style": "path"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    try:
        return (session or boto3.session.Session()).client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or None,
            config=Config(**options),
        )
    except (BotoCoreError, ValueError) as exc:
        raise ValidationError(
            "", f"cannot use S3 at {endpoint or 'AWS'} ({region or 'default region'}): {exc}"
        ) from None


class S3Clients:
    """Clients by endpoint and region, made from one session and reused: making a client
    takes a good fraction of a second, and clients are thread-safe."""

    def __init__(
        self, max_pool_connections: int = 10, max_clients: int = 32, quick: bool = False
    ) -> None:
        self.max_pool_connections = max_pool_connections
        self.max_clients = max_clients
        self.quick = quick
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}

    def get(self, endpoint: str = "", region: str = "") -> Any:
        key = (effective_endpoint(endpoint), region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if self._session is None:
                    self._session = boto3.session.Session()
                client = make_client(
                    *key, self.max_pool_connections, self._session, quick=self.quick
                )
                if len(self._clients) >= self.max_clients:
                    del self._clients[next(iter(self._clients))]
                self._clients[key] = client
            return client


def has_credentials() -> bool:
    """True when boto3's standard chain finds credentials on this host."""
    try:
        return boto3.session.Session().get_credentials() is not None
    except BotoCoreError:
        return False


def s3_error(exc: Exception, where: str) -> BacalaoError:
    """A boto3/botocore failure as one of our errors, with ``where`` (an s3:// URL) in it."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        text = f"{where}: {code or status} {error.get('Message') or ''}".rstrip()
        if code == "NoSuchBucket":
            bucket = error.get("BucketName") or where.removeprefix("s3://").split("/")[0]
            return NotFoundError(f"S3 bucket {bucket!r} does not exist ({where})")
        if code in MISSING_CODES or status == 404:
            return NotFoundError(text)
        if code in TRANSIENT_CODES or status >= 500 or status == 0:
            return TransportError(text)
        return ValidationError("", text)
    if isinstance(exc, NoCredentialsError):
        return TransportError(
            f"{where}: no AWS credentials on this host (AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or an instance role)"
        )
    return TransportError(f"{where}: {type(exc).__name__}: {exc}")


def sha256_digest(expected: str) -> bytes:
    """The 32 bytes of a SHA-256 given in hex or base64; ValidationError otherwise."""
    text = expected.strip()
    if _HEX_SHA256.fullmatch(text):
        return bytes.fromhex(text)
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        raise ValidationError("ChecksumSHA256", f"{expected!r} is not a SHA-256 in hex or base64")
    return digest


def is_composite(checksum: str) -> bool:
    """S3's checksum of a multipart object: base64 of the parts' checksums, then ``-N``."""
    return bool(re.fullmatch(r"[A-Za-z0-9+/]+=*-\d+", checksum.strip()))


def list_objects(client: Any, params: S3Params, max_objects: int | None = None) -> Listing:
    """The objects ``params`` names (see the module docstring); NotFoundError when none."""
    key = params.key.strip()
    single_key = bool(key) and not key.endswith(("*", "/"))
    if not single_key and (params.version_id or params.checksum_sha256):
        field = "VersionID" if params.version_id else "ChecksumSHA256"
        raise ValidationError(field, f"needs the key of one object, not the prefix {key!r}")
    if params.checksum_sha256 and not is_composite(params.checksum_sha256):
        sha256_digest(params.checksum_sha256)
    where = s3_url(params.bucket, key)
    try:
        if single_key:
            found = _head(client, params, where)
            if found is not None:
                return Listing(
                    params.bucket,
                    key,
                    (found,),
                    single=True,
                    expected_sha256=params.checksum_sha256,
                )
            if params.version_id:
                raise _missing(client, params, where)
            objects = _list(client, params.bucket, key + "/", params.filter, max_objects)
        else:
            key = key.removesuffix("*")
            objects = _list(client, params.bucket, key, params.filter, max_objects)
        if not objects:
            raise _missing(client, params, where)
    except S3_ERRORS as exc:
        raise s3_error(exc, where) from None
    return Listing(params.bucket, key, tuple(objects))


def _head(client: Any, params: S3Params, where: str) -> S3Object | None:
    """The one object ``params.key`` names, or None when there is no such object (or it is a
    folder marker)."""
    request: dict[str, str] = {"Bucket": params.bucket, "Key": params.key.strip()}
    if params.version_id:
        request["VersionId"] = params.version_id
    if params.checksum_sha256:
        request["ChecksumMode"] = "ENABLED"
    try:
        head = client.head_object(**request)
    except ClientError as exc:
        error = s3_error(exc, where)
        if isinstance(error, NotFoundError):
            return None
        raise error from None
    if str(head.get("ContentType", "")).startswith(DIRECTORY_CONTENT_TYPE):
        return None
    return S3Object(
        key=request["Key"],
        size_bytes=int(head.get("ContentLength", 0)),
        version_id=params.version_id,
        checksum_sha256=str(head.get("ChecksumSHA256", "")),
    )


def _list(
    client: Any, bucket: str, prefix: str, pattern: str, max_objects: int | None
) -> list[S3Object]:
    wanted = re.compile(pattern) if pattern else None
    found: list[S3Object] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            if wanted is not None and not wanted.search(key[len(prefix) :]):
                continue
            found.append(S3Object(key=key, size_bytes=int(item.get("Size", 0))))
            if max_objects is not None and len(found) > max_objects:
                raise ValidationError(
                    "Key", f"{s3_url(bucket, prefix)} names more than {max_objects} objects"
                )
    return found


def _missing(client: Any, params: S3Params, where: str) -> NotFoundError:
    """Why nothing was found: the bucket, the version, or no object matches."""
    try:
        client.head_bucket(Bucket=params.bucket)
    except ClientError as exc:
        if isinstance(s3_error(exc, where), NotFoundError):
            return NotFoundError(f"S3 bucket {params.bucket!r} does not exist ({where})")
    if params.version_id:
        return NotFoundError(f"{where}: no version {params.version_id!r} of this object")
    suffix = f" with Filter {params.filter!r}" if params.filter else ""
    return NotFoundError(f"{where}: no object in bucket {params.bucket!r} matches{suffix}")
