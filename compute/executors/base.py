"""The executor interface: run one execution's task, blocking, and say how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from protocol.job import EngineSpec, InputSource, NetworkConfig
from protocol.resources import Resources


@dataclass(frozen=True)
class Mount:
    """A host file or folder seen by the task at ``target``."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RunRequest:
    """Everything an executor needs; inputs are already staged on this host.

    ``outputs`` are empty writable folders inside ``results_dir`` (one per ResultPath), and
    the executor writes the task's ``stdout`` and ``stderr`` files into ``results_dir``
    (creating it), unless it returns them in :class:`RunOutcome` instead.
    """

    job_id: str
    execution_id: str
    engine: EngineSpec
    results_dir: Path
    timeout_s: float
    inputs: tuple[Mount, ...] = ()
    outputs: tuple[Mount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    partition_index: int = 0
    partition_count: int = 1
    node_id: str = ""


def execution_env(request: RunRequest) -> dict[str, str]:
    """The variables Bacalhau gives every task about its own execution."""
    return {
        "BACALHAU_JOB_ID": request.job_id,
        "BACALHAU_EXECUTION_ID": request.execution_id,
        "BACALHAU_NODE_ID": request.node_id,
        "BACALHAU_PARTITION_INDEX": str(request.partition_index),
        "BACALHAU_PARTITION_COUNT": str(request.partition_count),
    }


def task_env(request: RunRequest, engine_env: Mapping[str, str]) -> dict[str, str]:
    """What every engine gives a task: the job's env, then the engine's own
    EnvironmentVariables, then :func:`execution_env` (which neither can override)."""
    return {**request.env, **engine_env, **execution_env(request)}


@dataclass(frozen=True)
class RunOutcome:
    """How the task ended. ``error`` is set when it did not run to its own end
    (timeout, out of memory, trap, cancelled); ``exit_code`` is then non-zero too.

    ``stdout`` and ``stderr``: the task's output, from an executor that has it in memory and
    wrote no files (noop); None when it is in ``results_dir``'s files of those names. The
    runner writes the files itself only when a publisher or the verifier reads the folder.
    """

    exit_code: int
    error: str = ""
    stdout: str | None = None
    stderr: str | None = None


class Executor(Protocol):
    @property
    def type(self) -> str: ...

    def is_installed(self) -> bool: ...

    def extra_inputs(self, engine: EngineSpec) -> list[InputSource]:
        """Inputs the engine itself needs staged (e.g. an embedded wasm EntryModule)."""
        ...

    def run(self, request: RunRequest) -> RunOutcome:
        """Run to the end, blocking. Raises ExecutionError (the task cannot run, e.g. the
        module does not load) or RetryableExecutionError (this node failed)."""
        ...

    def cancel(self, execution_id: str) -> None:
        """Stop a running execution soon; ``run`` then returns an outcome with an error."""
        ...
