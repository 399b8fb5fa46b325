"""Running an executor on a thread, for tests that cancel or time it from outside."""

from __future__ import annotations

import threading

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
