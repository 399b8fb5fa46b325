"""``noop`` executor: runs nothing, for tests and benchmarks.

It writes ``Stdout``/``Stderr`` to the result files and ends with ``ExitCode`` after
``SleepSeconds`` of simulated work. The sleep ends early on cancel or timeout, with the same
outcomes as a real engine (see :mod:`compute.executors.interrupts`); the files are then empty.
"""

from __future__ import annotations

import logging
import time

from compute.executors.base import RunOutcome, RunRequest
from compute.executors.interrupts import RunControls
from protocol.errors import ExecutionError, ValidationError
from protocol.job import EngineSpec, InputSource
from protocol.specs.engines import NoopParams

log = logging.getLogger(__name__)


def noop_params(engine: EngineSpec) -> NoopParams:
    try:
        return engine.params_as(NoopParams, "Engine")
    except ValidationError as exc:
        raise ExecutionError(f"noop: {exc}") from None


class NoopExecutor:
    """Always installed; holds no resources beyond a waiting thread per run."""

    def __init__(self) -> None:
        self._controls = RunControls()

    @property
    def type(self) -> str:
        return "noop"

    def is_installed(self) -> bool:
        return True

    def extra_inputs(self, engine: EngineSpec) -> list[InputSource]:
        return []

    def running(self) -> list[str]:
        """Execution IDs running now, sorted."""
        return self._controls.running()

    def run(self, request: RunRequest) -> RunOutcome:
        params = noop_params(request.engine)
        request.results_dir.mkdir(parents=True, exist_ok=True)
        stdout_path = request.results_dir / "stdout"
        stderr_path = request.results_dir / "stderr"
        started = time.monotonic()
        with self._controls.track(request.execution_id, request.timeout_s, watchdog=False) as ctl:
            stopped = ctl.reason or ctl.wait(params.sleep_seconds)
            outcome = ctl.outcome() if stopped else RunOutcome(exit_code=params.exit_code)
        stdout_path.write_text("" if stopped else params.stdout, encoding="utf-8")
        stderr_path.write_text("" if stopped else params.stderr, encoding="utf-8")
        log.debug(
            "event=noop_run execution=%s exit_code=%d error=%r duration_s=%.3f",
            request.execution_id,
            outcome.exit_code,
            outcome.error,
            time.monotonic() - started,
        )
        return outcome

    def cancel(self, execution_id: str) -> None:
        self._controls.cancel(execution_id)
