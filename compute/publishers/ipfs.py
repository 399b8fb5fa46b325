"""``ipfs`` publisher: add the results folder to this node's IPFS daemon and pin it.

The folder is added recursively, hidden files included (symbolic links are skipped, so a task
cannot publish files from outside its results), and pinned so the daemon's garbage collector
keeps it. As in Bacalhau, the returned CID is the results folder itself, so ``bacalao job
get`` puts ``stdout``, ``stderr``, ``exitCode`` and the result paths straight into its output
folder. The result spec is ``{Type: ipfs, Params: {CID: ...}}``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from protocol.errors import (
    ExecutionError,
    NotFoundError,
    RetryableExecutionError,
    TransportError,
    ValidationError,
)
from protocol.ipfs import IPFSClient
from protocol.job import PublisherSpec, SpecConfig
from protocol.specs.publishers import IPFSPublisherParams
from protocol.specs.sources import IPFSParams

log = logging.getLogger(__name__)


class IPFSPublisher:
    """Publishes through the daemon at ``api`` (None: not installed)."""

    def __init__(
        self, api: str | None, *, add_timeout_s: float = 3600.0, installed_ttl_s: float = 10.0
    ) -> None:
        self.client = IPFSClient(api) if api else None
        self.add_timeout_s = add_timeout_s
        self.installed_ttl_s = installed_ttl_s

    @property
    def type(self) -> str:
        return "ipfs"

    @property
    def reads_results(self) -> bool:
        return True

    def is_installed(self) -> bool:
        return self.client is not None and self.client.answers(ttl_s=self.installed_ttl_s)

    def publish(
        self, spec: PublisherSpec, job_id: str, execution_id: str, results_dir: Path
    ) -> SpecConfig | None:
        try:
            spec.params_as(IPFSPublisherParams, "Publisher")
        except ValidationError as exc:
            raise ExecutionError(f"ipfs publisher: {exc}") from None
        if self.client is None:
            raise ExecutionError(
                "ipfs publisher: this node has no IPFS API configured (--ipfs-connect)"
            )
        if not results_dir.is_dir():
            raise ExecutionError(f"ipfs publisher: results folder {results_dir} does not exist")
        try:
            cid = self.client.add_folder(results_dir, self.add_timeout_s)
        except TransportError as exc:
            raise RetryableExecutionError(f"ipfs publisher: {exc}") from None
        except (NotFoundError, ValidationError) as exc:
            raise ExecutionError(f"ipfs publisher: {exc}") from None
        log.info(
            "event=ipfs_published job_id=%s execution_id=%s cid=%s api=%s",
            job_id,
            execution_id,
            cid,
            self.client.address.url,
        )
        return SpecConfig(type="ipfs", params=IPFSParams(cid=cid).to_wire())
