"""A results folder as a tar.gz that ``bacalao job get`` will unpack.

Publishers that ship one archive (``local``, ``s3`` with ``Compress``) pack it here. Only
members a downloader accepts are packed: ``tarfile.data_filter`` (the filter
:func:`protocol.results.extract_tar` applies) drops, with a warning, links to absolute paths
or out of the results folder, FIFOs, devices and the like.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

log = logging.getLogger(__name__)

COMPRESS_LEVEL = 6


def _extractable(root: Path, member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """``member`` as is when the ``data`` filter would extract it, else None (skipped)."""
    try:
        tarfile.data_filter(member, str(root))
    except tarfile.FilterError as exc:
        log.warning("event=archive_member_skipped member=%s reason=%r", member.name, str(exc))
        return None
    return member


def write_archive(results_dir: Path, archive: Path) -> None:
    """Pack the contents of ``results_dir`` (member names relative to it) into ``archive``."""
    with tarfile.open(archive, "w:gz", compresslevel=COMPRESS_LEVEL) as tar:
        for child in sorted(results_dir.iterdir()):
            tar.add(
                child, arcname=child.name, filter=lambda member: _extractable(results_dir, member)
            )
