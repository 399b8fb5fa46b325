"""``noop`` publisher: results are not kept anywhere; the job's result spec is empty."""

from __future__ import annotations

import logging
from pathlib import Path

from protocol.job import PublisherSpec, SpecConfig

log = logging.getLogger(__name__)


class NoopPublisher:
    """Publishes nothing; always installed."""

    @property
    def type(self) -> str:
        return "noop"

    @property
    def reads_results(self) -> bool:
        """It keeps nothing: the results folder is never read."""
        return False

    def is_installed(self) -> bool:
        return True

    def publish(
        self, spec: PublisherSpec, job_id: str, execution_id: str, results_dir: Path
    ) -> SpecConfig | None:
        log.debug("event=noop_published job_id=%s execution_id=%s", job_id, execution_id)
        return None
