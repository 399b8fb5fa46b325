"""A :class:`protocol.results.TransferProgress` that records what a download told it."""

from __future__ import annotations

import threading


class RecordingProgress:
    """``started``: each ``start`` call; ``counts``: the running byte count after each
    ``advance`` (so a download in several chunks leaves a growing list)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, int | None]] = []
        self.counts: list[int] = []
        self.received_bytes = 0
        self._lock = threading.Lock()

    def start(self, description: str, total_bytes: int | None) -> None:
        self.started.append((description, total_bytes))

    def advance(self, n_bytes: int) -> None:
        with self._lock:
            self.received_bytes += n_bytes
            self.counts.append(self.received_bytes)

    def grew_to(self, total_bytes: int) -> bool:
        """Counts rose in more than one step, each step forward, and ended at ``total_bytes``."""
        steps = zip([0, *self.counts], self.counts, strict=False)
        rising = all(after > before for before, after in steps)
        return len(self.counts) > 1 and rising and self.received_bytes == total_bytes
