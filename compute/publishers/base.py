"""The publisher interface: put a finished execution's results folder somewhere durable."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from protocol.job import PublisherSpec, SpecConfig


class Publisher(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def reads_results(self) -> bool:
        """Whether :meth:`publish` reads ``results_dir`` (False: the runner need not write it)."""
        ...

    def is_installed(self) -> bool: ...

    def publish(
        self, spec: PublisherSpec, job_id: str, execution_id: str, results_dir: Path
    ) -> SpecConfig | None:
        """Publish ``results_dir`` (``stdout``, ``stderr``, ``exitCode`` and one folder per
        result path) and return the result spec a client downloads it by, or None when
        nothing is kept (noop). Raises ExecutionError with a readable message."""
        ...
