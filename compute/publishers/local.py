"""``local`` publisher: a tar.gz of the results on this node, served over HTTP.

As Bacalhau's local publisher does, each execution's results folder is packed into
``<base_dir>/<execution_id>.tar.gz`` (written under a hidden temporary name, then renamed, so
a reader never sees half an archive) and the node's results server
(:mod:`compute.publishers.local_server`) serves that folder. The result spec is
``{Type: urlDownload, Params: {URL: <base_url>/<execution_id>.tar.gz?sig=<capability>}}``,
which ``bacalao job get`` downloads and unpacks from any host that reaches ``base_url``
(:mod:`compute.publishers.capability`: the server serves no result without its ``sig``).

Without a ``base_url`` (no server: a folder shared between hosts) the spec is
``{Type: local, Params: {URL: file:///.../<execution_id>.tar.gz}}``.

Only members a downloader will accept are packed
(:func:`compute.publishers.archive.write_archive`): links that leave the results folder,
FIFOs, devices and the like are dropped with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tarfile
from pathlib import Path
from urllib.parse import quote

from compute.publishers.archive import write_archive
from compute.publishers.capability import ResultLinks
from protocol.errors import ExecutionError, ValidationError
from protocol.job import PublisherSpec, SpecConfig
from protocol.specs.publishers import LocalPublisherParams, LocalResultParams
from protocol.specs.sources import URLDownloadParams

log = logging.getLogger(__name__)

ARCHIVE_SUFFIX = ".tar.gz"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_archive_name(name: str) -> bool:
    """True for ``<safe name>.tar.gz``: one path segment, not hidden, no odd characters."""
    return name.endswith(ARCHIVE_SUFFIX) and _SAFE_NAME.fullmatch(name) is not None


def archive_name(execution_id: str) -> str:
    """``<execution_id>.tar.gz``; ExecutionError when the ID cannot be a file name."""
    if not _SAFE_NAME.fullmatch(execution_id):
        raise ExecutionError(f"local publisher: {execution_id!r} is not a usable file name")
    return execution_id + ARCHIVE_SUFFIX


def result_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{quote(name)}"


class LocalPublisher:
    """Packs each execution's results into ``base_dir``; served at ``base_url`` if given,
    with each URL carrying its capability when the server asks for ``links``'."""

    def __init__(
        self, base_dir: Path, base_url: str | None = None, links: ResultLinks | None = None
    ) -> None:
        self.base_dir = base_dir
        self.base_url = base_url
        self.links = links

    @property
    def type(self) -> str:
        return "local"

    @property
    def reads_results(self) -> bool:
        return True

    def is_installed(self) -> bool:
        return True

    def publish(
        self, spec: PublisherSpec, job_id: str, execution_id: str, results_dir: Path
    ) -> SpecConfig | None:
        try:
            spec.params_as(LocalPublisherParams, "Publisher")
        except ValidationError as exc:
            raise ExecutionError(f"local publisher: {exc}") from None
        if not results_dir.is_dir():
            raise ExecutionError(f"local publisher: results folder {results_dir} does not exist")
        name = archive_name(execution_id)
        final = (self.base_dir / name).absolute()
        partial = final.with_name(f".{name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            write_archive(results_dir, partial)
            os.replace(partial, final)
        except (OSError, tarfile.TarError) as exc:
            raise ExecutionError(f"local publisher: cannot write {final}: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        log.info(
            "event=local_published job_id=%s execution_id=%s path=%s size_bytes=%d",
            job_id,
            execution_id,
            final,
            final.stat().st_size,
        )
        if self.base_url is None:
            return SpecConfig(type="local", params=LocalResultParams(url=final.as_uri()).to_wire())
        if self.links is not None:
            url = self.links.url(self.base_url, name)
        else:
            url = result_url(self.base_url, name)
        result = URLDownloadParams(url=url)
        return SpecConfig(type="urlDownload", params=result.to_wire())
