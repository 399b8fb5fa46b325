"""Rankers that filter on what a node has installed: engine, publisher, storage sources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol.job import Job
from protocol.node import ComputeNodeInfo, NodeInfo
from protocol.specs.engines import WasmParams
from requester.selection.base import NEUTRAL, RankContext, Score, Unsuitable, compute_info, lower

# How an operator turns on a storage source that is off by default.
SOURCE_HINTS = {
    "local": " (a node reads local paths only under --allow-listed-local-paths)",
    "ipfs": " (a node reads IPFS with --ipfs-connect)",
}


def source_types(job: Job) -> set[str]:
    """Every storage source type the job's task needs, the wasm entry module's included,
    spelled as registered (the job's specs were when it was read)."""
    task = job.task
    types = {source.source.type for source in task.input_sources}
    if task.engine.type == "wasm":
        params = task.engine.params_as(WasmParams, "Tasks[0].Engine")
        if not isinstance(params.entry_module, str):
            types.add(params.entry_module.source.type)
    return types


@dataclass(frozen=True)
class InstalledRanker:
    """The job's engine (or publisher) must be installed on the node."""

    name: str
    wanted: Callable[[Job], str]  # the type the job asks for
    installed: Callable[[ComputeNodeInfo], list[str]]  # what the node has

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        kind = self.wanted(job)
        if kind.lower() in lower(self.installed(compute_info(node))):
            return NEUTRAL
        return Unsuitable(f"{self.name} {kind} not installed")


ENGINE = InstalledRanker(
    "engine", lambda job: job.task.engine.type, lambda info: info.execution_engines
)
PUBLISHER = InstalledRanker(
    "publisher", lambda job: job.task.publisher.type, lambda info: info.publishers
)


class StorageRanker:
    name = "storage"

    def rank(self, job: Job, node: NodeInfo, context: RankContext) -> Unsuitable | Score:
        if not context.sources:
            return NEUTRAL
        installed = lower(compute_info(node).storage_sources)
        missing = sorted(t for t in context.sources if t.lower() not in installed)
        if not missing:
            return NEUTRAL
        hints = "".join(SOURCE_HINTS.get(name, "") for name in missing)
        return Unsuitable(f"storage {', '.join(missing)} not installed{hints}")
