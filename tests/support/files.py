"""Folders and archives as plain dicts, for comparing what a job read or wrote."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root``: its POSIX path relative to ``root`` -> its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A gzipped tarball of regular files: name -> content."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
