"""Putting S3 objects on disk: where each object lands, concurrent downloads with the boto3
transfer manager, and the checksum check of a single object (see ``protocol.s3`` for which
objects a spec names).

An object lands at its key relative to the prefix's folder: with ``data/2023/a*``,
``data/2023/a1.csv`` lands at ``a1.csv`` and ``data/2023/ab/c.csv`` at ``ab/c.csv`` (Bacalhau's
rule). A key that would land outside the target folder (``..``), or two objects that would
land on the same path, are refused with ValidationError before anything is written.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from boto3.s3.transfer import create_transfer_manager

from protocol.errors import TransportError, ValidationError
from protocol.s3 import (
    MIB,
    S3_ERRORS,
    Listing,
    S3Object,
    TransferSettings,
    is_composite,
    s3_error,
    s3_url,
    sha256_digest,
)

OnBytes = Callable[[int], None]


def file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.digest()


def verify_sha256(path: Path, expected: str, reported: str, where: str) -> None:
    """Check a downloaded object against ``expected``; a composite (multipart) checksum can
    only be compared with the one the server ``reported``."""
    if is_composite(expected):
        if expected.strip() != reported:
            raise ValidationError(
                "ChecksumSHA256", f"{where}: checksum is {reported or 'unknown'}, not {expected}"
            )
        return
    actual = file_sha256(path)
    if actual != sha256_digest(expected):
        encoded = base64.b64encode(actual).decode()
        raise ValidationError(
            "ChecksumSHA256",
            f"{where}: SHA-256 of the downloaded object is {actual.hex()} ({encoded}), "
            f"not {expected}",
        )


def local_path(key: str, prefix: str) -> PurePosixPath:
    """Where the object ``key`` lands, relative to the target folder: its key without the
    folders of ``prefix`` it shares. ValidationError for a key that would leave the folder."""
    folders = prefix.split("/")[:-1]
    parts = key.split("/")
    start = 0
    for folder, part in zip(folders, parts, strict=False):
        if folder != part:
            break
        start += 1
    rest = [part for part in parts[start:] if part not in ("", ".")]
    if ".." in rest or not rest:
        raise ValidationError("Key", f"object key {key!r} would land outside the target folder")
    return PurePosixPath(*rest)


def plan(listing: Listing) -> list[tuple[S3Object, PurePosixPath]]:
    """Each object and its local path; ValidationError when two would collide."""
    planned: list[tuple[S3Object, PurePosixPath]] = []
    files: dict[PurePosixPath, str] = {}
    for obj in listing.objects:
        if obj.is_folder and obj.key == listing.prefix:
            continue
        path = local_path(obj.key, listing.prefix)
        if not obj.is_folder:
            if path in files:
                raise ValidationError(
                    "Key", f"object keys {files[path]!r} and {obj.key!r} both land at {path}"
                )
            files[path] = obj.key
        planned.append((obj, path))
    for path, key in files.items():
        for parent in path.parents:
            if parent in files:
                raise ValidationError(
                    "Key", f"object {files[parent]!r} is a file where {key!r} needs a folder"
                )
    return planned


class _Subscriber:
    """Tells the transfer manager the size we already know (no HEAD per object) and passes
    progress on."""

    def __init__(self, size_bytes: int, on_bytes: OnBytes | None) -> None:
        self._size_bytes = size_bytes
        self._on_bytes = on_bytes

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size_bytes)

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        if self._on_bytes is not None:
            self._on_bytes(bytes_transferred)


def download(
    client: Any,
    listing: Listing,
    dest: Path,
    settings: TransferSettings | None = None,
    on_bytes: OnBytes | None = None,
) -> list[Path]:
    """Download the listing's objects under ``dest`` concurrently; returns the files."""
    planned = plan(listing)
    root = dest.resolve()
    written: list[Path] = []
    try:
        with create_transfer_manager(client, (settings or TransferSettings()).config()) as manager:
            futures = []
            for obj, relative in planned:
                path = root / relative
                if not path.resolve().is_relative_to(root):
                    raise ValidationError("Key", f"object key {obj.key!r} leaves {dest}")
                if obj.is_folder:
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                extra = {"VersionId": obj.version_id} if obj.version_id else {}
                subscriber = _Subscriber(obj.size_bytes, on_bytes)
                future = manager.download(
                    listing.bucket, obj.key, str(path), extra_args=extra, subscribers=[subscriber]
                )
                futures.append((obj, future))
                written.append(path)
            for obj, future in futures:
                try:
                    future.result()
                except S3_ERRORS as exc:
                    raise s3_error(exc, s3_url(listing.bucket, obj.key)) from None
    except OSError as exc:
        raise TransportError(f"cannot write to {dest}: {exc}") from None
    if listing.single and listing.expected_sha256:
        obj = listing.objects[0]
        verify_sha256(
            written[0],
            listing.expected_sha256,
            obj.checksum_sha256,
            s3_url(listing.bucket, obj.key),
        )
    return written
