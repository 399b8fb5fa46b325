"""The publishers a compute node offers by default: ``local`` (under ``results_dir``), ``noop``,
``s3`` (installed when AWS credentials are found), ``ipfs`` (installed when an IPFS API address
is given and the daemon answers)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from compute.publishers.base import Publisher
from compute.publishers.capability import ResultLinks
from compute.publishers.ipfs import IPFSPublisher
from compute.publishers.local import LocalPublisher
from compute.publishers.noop import NoopPublisher
from compute.publishers.s3 import S3Publisher
from compute.registry import Registry


def default_publishers(
    results_dir: Path,
    disabled: Iterable[str] = (),
    *,
    local_base_url: str | None = None,
    result_links: ResultLinks | None = None,
    node_id: str = "",
    ipfs_api: str | None = None,
) -> Registry[Publisher]:
    """``local_base_url``: where this node's results server serves ``results_dir`` (with
    ``result_links``, the capabilities it asks for);
    ``node_id`` fills the ``{nodeID}`` placeholder of S3 keys; ``ipfs_api``: the IPFS daemon's
    RPC API multiaddr."""
    providers: list[Publisher] = [
        LocalPublisher(results_dir, local_base_url, result_links),
        NoopPublisher(),
        S3Publisher(node_id),
        IPFSPublisher(ipfs_api),
    ]
    return Registry("publisher", providers, disabled)
