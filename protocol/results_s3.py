"""``download_result`` for ``s3`` results (imported only then: it loads boto3).

A result spec names either one tarball (``Compress: true``: ``<key>.tar.gz``), extracted into
the destination with the safe ``extract_tar``, or a folder of plain objects, downloaded keeping
their layout relative to it. A single object that is not an archive is saved as a file.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
from pathlib import Path

from protocol.errors import TransportError
from protocol.results import TransferProgress, extract_tar, safe_filename
from protocol.s3 import TransferSettings, list_objects, make_client, s3_url
from protocol.s3_download import download
from protocol.specs.sources import S3Params

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def download_s3_result(
    params: S3Params,
    dest: Path,
    progress: TransferProgress | None = None,
    *,
    max_bytes: int | None = None,
    transfer: TransferSettings | None = None,
) -> None:
    where = s3_url(params.bucket, params.key)
    client = make_client(params.endpoint, params.region)
    listing = list_objects(client, params)
    if max_bytes is not None and listing.total_bytes > max_bytes:
        raise TransportError(f"{where}: {listing.total_bytes} bytes, larger than {max_bytes}")
    on_bytes = None
    if progress is not None:
        progress.start(where, listing.total_bytes)
        on_bytes = progress.advance
    if not listing.single:
        files = download(client, listing, dest, transfer, on_bytes)
        log.info("event=result_downloaded url=%s files=%d dest=%s", where, len(files), dest)
        return
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as scratch:
        (fetched,) = download(client, listing, Path(scratch), transfer, on_bytes)
        if params.key.endswith(ARCHIVE_SUFFIXES) and tarfile.is_tarfile(fetched):
            extract_tar(fetched, dest)
            log.info("event=result_extracted url=%s dest=%s", where, dest)
            return
        final = dest / safe_filename(fetched.name)
        shutil.move(fetched, final)
        log.info("event=result_downloaded url=%s path=%s", where, final)
