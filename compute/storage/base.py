"""The storage provider interface: make one input source available on this host."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from compute.executors.base import Mount
from protocol.job import InputSource, SourceSpec


class StorageProvider(Protocol):
    @property
    def type(self) -> str: ...

    def is_installed(self) -> bool: ...

    def has_locally(self, spec: SourceSpec) -> bool:
        """True when the data is already on this host (no transfer needed)."""
        ...

    def size_bytes(self, spec: SourceSpec) -> int | None:
        """The data's size if it can be known cheaply, else None."""
        ...

    def prepare(self, source: InputSource, staging_dir: Path) -> Mount:
        """Fetch or link the data under ``staging_dir`` (an empty folder owned by this call)
        and return the mount at ``source.target``. Raises ExecutionError with a readable
        message (RetryableExecutionError for transient failures)."""
        ...
