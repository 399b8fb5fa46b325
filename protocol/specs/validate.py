"""Checks that need the spec registries: every Type known, every Params valid."""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath

from protocol.errors import ValidationError
from protocol.job import Job, SpecConfig
from protocol.specs.engines import WasmParams
from protocol.specs.registry import ENGINES, PUBLISHERS, SOURCES, SpecFamily
from protocol.verification import VERIFY_KEY
from protocol.verification import problem as verification_problem


def _canonicalize(family: SpecFamily, spec: SpecConfig, where: str) -> None:
    family.parse(spec, where)
    spec.type = family.spelled(spec.type)


def validate_job(job: Job) -> list[str]:
    """Check every spec of ``job`` (in place: types get their registered spelling).

    Raises :class:`ValidationError` naming the field; returns warnings worth showing.
    """
    task = job.task
    where = "Job.Tasks[0]"
    warnings: list[str] = []
    _canonicalize(ENGINES, task.engine, f"{where}.Engine")
    _canonicalize(PUBLISHERS, task.publisher, f"{where}.Publisher")
    for index, source in enumerate(task.input_sources):
        _canonicalize(SOURCES, source.source, f"{where}.InputSources[{index}].Source")
        if not source.target:
            raise ValidationError(f"{where}.InputSources[{index}].Target", "must not be empty")
    if task.engine.type == "wasm":
        params = WasmParams.from_wire(task.engine.params, prefix=f"{where}.Engine.Params")
        if isinstance(params.entry_module, str):
            module = PurePosixPath(posixpath.normpath(params.entry_module))
            targets = [PurePosixPath(posixpath.normpath(s.target)) for s in task.input_sources]
            if not any(module == t or t in module.parents for t in targets):
                raise ValidationError(
                    f"{where}.Engine.Params.EntryModule",
                    f"{params.entry_module!r} is not the Target of any InputSource, nor inside one",
                )
        else:
            _canonicalize(
                SOURCES, params.entry_module.source, f"{where}.Engine.Params.EntryModule.Source"
            )
    if task.publisher.type == "noop" and task.result_paths:
        warnings.append("ResultPaths are set but the noop publisher discards results")
    verify_problem = verification_problem(job)
    if verify_problem:
        where_given = "Job.Meta" if VERIFY_KEY in job.meta else "Job.Labels"
        raise ValidationError(f"{where_given}[{VERIFY_KEY}]", verify_problem)
    return warnings
