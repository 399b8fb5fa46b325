"""Threads for tests: an executor run on one (to cancel or time it from outside), and work
released on several at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

from compute.executors.base import Executor, RunOutcome, RunRequest

PROMPT_S = 10.0  # an interrupted run must end well within this


class RunInThread:
    """Runs ``executor.run(request)`` on a thread and keeps what it returned or raised."""

    def __init__(self, executor: Executor, request: RunRequest) -> None:
        self.outcome: RunOutcome | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(executor, request))
        self._thread.start()

    def _run(self, executor: Executor, request: RunRequest) -> None:
        try:
            self.outcome = executor.run(request)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout_s: float = PROMPT_S) -> RunOutcome:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"run still going after {timeout_s}s"
        assert self.error is None, self.error
        assert self.outcome is not None
        return self.outcome


def run_together(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(0..count-1)`` on ``count`` threads released at once; what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:  # collected and asserted on by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
