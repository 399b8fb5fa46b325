"""Checks that need every spec of a job at once: every Type known, the wasm EntryModule
among the inputs. The Params themselves were parsed when the job was (see
:mod:`protocol.specs.family`)."""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from protocol.errors import ValidationError
from protocol.specs.engines import WasmParams
from protocol.specs.family import TypedSpec
from protocol.verification import VERIFY_KEY
from protocol.verification import problem as verification_problem

if TYPE_CHECKING:
    from protocol.job import Job


def _known(spec: TypedSpec, where: str) -> None:
    if spec.family.canonical(spec.type) is None:
        raise spec.family.unknown(spec.type, where)


def _entry_module_among_inputs(params: WasmParams, targets: list[str], where: str) -> None:
    if isinstance(params.entry_module, str):
        module = PurePosixPath(posixpath.normpath(params.entry_module))
        paths = [PurePosixPath(posixpath.normpath(target)) for target in targets]
        if not any(module == path or path in module.parents for path in paths):
            raise ValidationError(
                f"{where}.EntryModule",
                f"{params.entry_module!r} is not the Target of any InputSource, nor inside one",
            )
    else:
        _known(params.entry_module.source, f"{where}.EntryModule.Source")


def validate_job(job: Job) -> list[str]:
    """Raise :class:`ValidationError` naming the field; return warnings worth showing."""
    task = job.task
    where = "Job.Tasks[0]"
    warnings: list[str] = []
    _known(task.engine, f"{where}.Engine")
    _known(task.publisher, f"{where}.Publisher")
    for index, source in enumerate(task.input_sources):
        _known(source.source, f"{where}.InputSources[{index}].Source")
        if not source.target:
            raise ValidationError(f"{where}.InputSources[{index}].Target", "must not be empty")
    if isinstance(task.engine.params, WasmParams):
        targets = [source.target for source in task.input_sources]
        _entry_module_among_inputs(task.engine.params, targets, f"{where}.Engine.Params")
    if task.publisher.type == "noop" and task.result_paths:
        warnings.append("ResultPaths are set but the noop publisher discards results")
    verify_problem = verification_problem(job)
    if verify_problem:
        where_given = "Job.Meta" if VERIFY_KEY in job.meta else "Job.Labels"
        raise ValidationError(f"{where_given}[{VERIFY_KEY}]", verify_problem)
    return warnings
