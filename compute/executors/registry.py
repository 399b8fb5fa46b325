"""The executors a compute node offers, keyed by engine Type."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from compute.executors.base import Executor
from compute.executors.docker import DockerExecutor
from compute.executors.noop import NoopExecutor
from compute.executors.wasm import WasmExecutor
from compute.registry import Registry


def default_executors(
    disabled: Iterable[str] = (),
    scratch_dir: Path | None = None,
    docker_host: str | None = None,
) -> Registry[Executor]:
    """``wasm`` and ``noop``, and ``docker`` while its daemon answers (``docker_host``, else
    ``DOCKER_HOST``, else the local socket); ``disabled`` names engine types this node must
    not offer."""
    executors: list[Executor] = [
        WasmExecutor(scratch_dir=scratch_dir),
        NoopExecutor(),
        DockerExecutor(docker_host),
    ]
    return Registry("executor", executors, disabled)
