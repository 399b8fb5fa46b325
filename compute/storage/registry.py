"""The storage providers a compute node offers by default: ``inline``, ``local``,
``urlDownload``, ``s3``, ``ipfs``. ``local`` is installed only when some host path is
allow-listed, ``s3`` only when AWS credentials are found, ``ipfs`` only when an IPFS API
address is given and the daemon answers.

Registries are keyed by the canonical type: a job's source Types arrive spelled so, with
Bacalhau's aliases (``localDirectory``, ``url``) mapped (see :mod:`protocol.specs.family`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from compute.registry import Registry
from compute.storage import inline, urldownload
from compute.storage.base import StorageProvider
from compute.storage.inline import InlineStorage
from compute.storage.ipfs import IPFSStorage
from compute.storage.local import LocalStorage
from compute.storage.s3 import S3Storage
from compute.storage.urldownload import URLDownloadStorage


def default_storage(
    allowed_local_paths: Sequence[Path | str] = (),
    *,
    inline_max_bytes: int = inline.DEFAULT_MAX_BYTES,
    url_max_bytes: int = urldownload.DEFAULT_MAX_BYTES,
    ipfs_api: str | None = None,
    disabled: Iterable[str] = (),
) -> Registry[StorageProvider]:
    providers: list[StorageProvider] = [
        InlineStorage(max_bytes=inline_max_bytes),
        LocalStorage(allowed_local_paths),
        URLDownloadStorage(max_bytes=url_max_bytes),
        S3Storage(),
        IPFSStorage(ipfs_api),
    ]
    return Registry("storage source", providers, disabled)
