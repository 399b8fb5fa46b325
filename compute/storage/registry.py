"""The storage providers a compute node offers by default: ``inline``, ``local``,
``urlDownload``. ``local`` is installed only when some host path is allow-listed.

Registries are keyed by the canonical type; Bacalhau's aliases (``localDirectory``, ``url``)
are mapped by ``protocol.specs.registry.SOURCES.canonical`` before lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from compute.registry import Registry
from compute.storage import inline, urldownload
from compute.storage.base import StorageProvider
from compute.storage.inline import InlineStorage
from compute.storage.local import LocalStorage
from compute.storage.urldownload import URLDownloadStorage


def default_storage(
    allowed_local_paths: Sequence[Path | str] = (),
    *,
    inline_max_bytes: int = inline.DEFAULT_MAX_BYTES,
    url_max_bytes: int = urldownload.DEFAULT_MAX_BYTES,
    disabled: Iterable[str] = (),
) -> Registry[StorageProvider]:
    providers: list[StorageProvider] = [
        InlineStorage(max_bytes=inline_max_bytes),
        LocalStorage(allowed_local_paths),
        URLDownloadStorage(max_bytes=url_max_bytes),
    ]
    return Registry("storage source", providers, disabled)
