"""``noop`` executor: runs nothing, for tests and benchmarks.

It ends with ``ExitCode`` after ``SleepSeconds`` of simulated work and hands back ``Stdout`` /
``Stderr`` in its outcome, touching no file (the runner writes the result files when something
reads them). The sleep ends early on cancel or timeout, with the same outcomes as a real
engine (see :mod:`compute.executors.interrupts`); the output is then empty.
"""

from __future__ import annotations

import dataclasses
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
        started = time.monotonic()
        with self._controls.track(request.execution_id, request.timeout_s, watchdog=False) as ctl:
            stopped = ctl.reason or ctl.wait(params.sleep_seconds)
            if stopped:
                outcome = dataclasses.replace(ctl.outcome(), stdout="", stderr="")
            else:
                outcome = RunOutcome(params.exit_code, stdout=params.stdout, stderr=params.stderr)
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
