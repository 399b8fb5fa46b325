"""The executors a compute node offers, keyed by engine Type."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from compute.executors.base import Executor
from compute.executors.noop import NoopExecutor
from compute.executors.wasm import WasmExecutor
from compute.registry import Registry


def default_executors(
    disabled: Iterable[str] = (), scratch_dir: Path | None = None
) -> Registry[Executor]:
    """``wasm`` and ``noop``; ``disabled`` names engine types this node must not offer."""
    executors: list[Executor] = [WasmExecutor(scratch_dir=scratch_dir), NoopExecutor()]
    return Registry("executor", executors, disabled)
