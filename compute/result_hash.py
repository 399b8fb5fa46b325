"""A run's results as one hash, so a requester can compare redundant executions.

What is hashed (see :mod:`protocol.verification`): every file under the results folder but
``stderr``, in sorted order of their paths, each as its path, its size and its bytes, so
no two different trees hash alike. Files are read in chunks: any size hashes in bounded
memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1024 * 1024
LEFT_OUT = frozenset({"stderr"})


def result_hash(results_dir: Path) -> str:
    """``sha256:<hex>`` of the results under ``results_dir``."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in results_dir.rglob("*")
        if path.is_file() and path.relative_to(results_dir).as_posix() not in LEFT_OUT
    )
    for path in files:
        name = path.relative_to(results_dir).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
