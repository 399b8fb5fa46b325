"""``ipfs`` storage: fetch a CID through this node's IPFS daemon (its RPC API).

As in Bacalhau, the CID lands at ``<staging>/<CID>`` and that path is mounted at ``Target``:
a file CID is seen by the task as the file ``Target``, a directory CID as the folder
``Target``. The daemon's own store, peers and network do the fetching; this provider only
asks it, first to stat the CID (bounded by ``find_timeout_s``, so a CID nobody has fails
instead of waiting for ever), then to stream it (bounded by ``download_timeout_s``).

Installed only when an API address is configured and the daemon answers (asked again every
``installed_ttl_s``). Errors: a malformed CID or one not found in time is ExecutionError; an
API that cannot be reached or fails is RetryableExecutionError. ``has_locally`` means the
daemon pins the CID; ``size_bytes`` is its cumulative size if the daemon can stat it within
``size_timeout_s``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from compute.executors.base import Mount
from protocol.errors import (
    BacalaoError,
    ExecutionError,
    NotFoundError,
    RetryableExecutionError,
    TransportError,
    ValidationError,
)
from protocol.ipfs import IPFSClient, check_cid
from protocol.job import InputSource, SourceSpec
from protocol.specs.sources import IPFSParams

log = logging.getLogger(__name__)


def cid_of(spec: SourceSpec) -> str:
    """The spec's CID, checked; ExecutionError naming the field when it is not one."""
    try:
        params = spec.params_as(IPFSParams, "Source")
        return check_cid(params.cid, field="Source.Params.CID")
    except ValidationError as exc:
        raise ExecutionError(f"ipfs: {exc}") from None


class IPFSStorage:
    """Stages IPFS CIDs through the daemon at ``api`` (None: not installed)."""

    def __init__(
        self,
        api: str | None,
        *,
        find_timeout_s: float = 30.0,
        download_timeout_s: float = 3600.0,
        size_timeout_s: float = 2.0,
        installed_ttl_s: float = 10.0,
    ) -> None:
        self.client = IPFSClient(api) if api else None
        self.find_timeout_s = find_timeout_s
        self.download_timeout_s = download_timeout_s
        self.size_timeout_s = size_timeout_s
        self.installed_ttl_s = installed_ttl_s

    @property
    def type(self) -> str:
        return "ipfs"

    def is_installed(self) -> bool:
        return self.client is not None and self.client.answers(ttl_s=self.installed_ttl_s)

    def has_locally(self, spec: SourceSpec) -> bool:
        if self.client is None:
            return False
        try:
            return self.client.is_pinned(cid_of(spec))
        except BacalaoError:
            return False

    def size_bytes(self, spec: SourceSpec) -> int | None:
        if self.client is None:
            return None
        try:
            return self.client.stat(cid_of(spec), self.size_timeout_s).cumulative_size_bytes
        except BacalaoError:
            return None

    def prepare(self, source: InputSource, staging_dir: Path) -> Mount:
        cid = cid_of(source.source)
        if self.client is None:
            raise ExecutionError("ipfs: this node has no IPFS API configured (--ipfs-connect)")
        try:
            staging_dir.mkdir(parents=True, exist_ok=True)
            stat = self.client.stat(cid, self.find_timeout_s)
            path = self.client.get(cid, staging_dir, self.download_timeout_s)
        except (NotFoundError, ValidationError) as exc:
            raise ExecutionError(f"ipfs: {exc}") from None
        except TransportError as exc:
            raise RetryableExecutionError(f"ipfs: {exc}") from None
        except OSError as exc:
            raise RetryableExecutionError(
                f"ipfs: cannot write {cid} to {staging_dir}: {exc}"
            ) from None
        log.info(
            "event=ipfs_staged cid=%s kind=%s size_bytes=%d path=%s target=%s",
            cid,
            stat.kind,
            stat.cumulative_size_bytes,
            path,
            source.target,
        )
        return Mount(source=path, target=source.target, read_only=True)
