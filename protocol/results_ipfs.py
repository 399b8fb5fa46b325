"""``download_result`` for ``ipfs`` results (imported only then: it loads ipfshttpclient).

The CID is fetched through an IPFS daemon's RPC API: the one given (``bacalao job get
--ipfs-connect``), else ``BACALAO_IPFS_API``, else a local daemon's default
``/ip4/127.0.0.1/tcp/5001``. A folder CID (what the ``ipfs`` publisher returns) is unpacked
into the destination; a file CID is saved there under its CID. A progress is told the
DAG's cumulative size (js-ipfs announces no length for the tar it streams), then each chunk
of that tar: the count ends a little off the total, which only a progress bar sees.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from protocol.errors import TransportError
from protocol.ipfs import API_ENV_VAR, DEFAULT_API, IPFSClient, check_cid
from protocol.results import TransferProgress
from protocol.specs.sources import IPFSParams

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 3600.0


def api_address(api: str | None) -> str:
    return api or os.environ.get(API_ENV_VAR) or DEFAULT_API


def download_ipfs_result(
    params: IPFSParams,
    dest: Path,
    api: str | None = None,
    *,
    find_timeout_s: float = 60.0,
    max_bytes: int | None = None,
    progress: TransferProgress | None = None,
) -> None:
    cid = check_cid(params.cid, field="Params.CID")
    client = IPFSClient(api_address(api))
    try:
        stat = client.stat(cid, find_timeout_s)
    except TransportError as exc:
        raise TransportError(
            f"{exc} (choose the daemon with --ipfs-connect or {API_ENV_VAR})"
        ) from None
    if max_bytes is not None and stat.cumulative_size_bytes > max_bytes:
        raise TransportError(
            f"ipfs {cid}: {stat.cumulative_size_bytes} bytes, larger than {max_bytes}"
        )
    on_bytes = None
    if progress is not None:
        progress.start(f"ipfs://{cid}", stat.cumulative_size_bytes)
        on_bytes = progress.advance
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as scratch:
        fetched = client.get(cid, Path(scratch), DOWNLOAD_TIMEOUT_S, on_bytes)
        if fetched.is_dir():
            for child in fetched.iterdir():
                shutil.move(child, dest / child.name)
        else:
            shutil.move(fetched, dest / cid)
    log.info(
        "event=result_downloaded cid=%s kind=%s api=%s dest=%s",
        cid,
        stat.kind,
        client.address.url,
        dest,
    )
