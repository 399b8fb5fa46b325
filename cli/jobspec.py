"""From command-line values (or a job file) to a :class:`protocol.job.Job`: pure functions.

Nothing here talks to the network or prints; every problem is a
:class:`~cli.errors.JobSpecError` that names the option at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import yaml

from cli.errors import JobSpecError
from cli.inputs import LARGE_MODULE_BYTES, module_source, parse_input
from protocol.errors import ValidationError
from protocol.job import Job, LabelSelectorRequirement
from protocol.selectors import parse_selector
from protocol.specs import validate_job

DEFAULT_ENTRYPOINT = "_start"
DEFAULT_PUBLISHER = "local"
PUBLISHER_FORMS = "local, noop, ipfs or s3://bucket/prefix"
_SERVER_FIELDS = ("State", "Version", "Revision", "CreateTime", "ModifyTime")
# Where a problem in the built job comes from, most specific first.
_FIELD_OPTIONS = (
    ("Tasks[0].Engine.Params.EnvironmentVariables", "--env"),
    ("Tasks[0].Engine.Params.Entrypoint", "--entry-point"),
    ("Tasks[0].Engine.Params.EntryModule", "MODULE"),
    ("Tasks[0].Resources.Memory", "--memory"),
    ("Tasks[0].Resources.CPU", "--cpu"),
    ("Tasks[0].InputSources", "--input"),
    ("Tasks[0].ResultPaths", "--output"),
    ("Tasks[0].Publisher", "--publisher"),
    ("Tasks[0].Timeouts", "--timeout"),
    ("Count", "--count"),
    ("Labels", "--labels"),
    ("Constraints", "--constraints"),
    ("constraints", "--constraints"),
)


@dataclass(frozen=True)
class BuiltJob:
    """A job ready to submit, and what the user should hear about it first."""

    job: Job
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class WasmRunSpec:
    """The values of ``bacalao wasm run``, as typed on the command line."""

    module: str
    args: Sequence[str] = ()
    inputs: Sequence[str] = ()
    env: Sequence[str] = ()
    entry_point: str = DEFAULT_ENTRYPOINT
    count: int = 1
    timeout_s: int = 0
    memory: str = ""
    cpu: str = ""
    outputs: Sequence[str] = ()
    publisher: str = DEFAULT_PUBLISHER
    labels: Sequence[str] = ()
    constraints: Sequence[str] = ()
    selectors: Sequence[str] = ()


def parse_env(values: Iterable[str]) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``."""
    env: dict[str, str] = {}
    for value in values:
        key, equals, val = value.partition("=")
        if not equals or not key.strip():
            raise JobSpecError(f"{value!r} is not of the form KEY=VALUE", option="--env")
        env[key.strip()] = val
    return env


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """``["a=1,b=2", "c"]`` -> ``{"a": "1", "b": "2", "c": ""}``; repeatable or comma lists."""
    labels: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            key, _, val = item.partition("=")
            if not key.strip():
                raise JobSpecError(f"{value!r} has a label without a key", option="--labels")
            labels[key.strip()] = val.strip()
    return labels


def parse_constraints(
    constraints: Iterable[str], selectors: Iterable[str] = ()
) -> list[LabelSelectorRequirement]:
    """``--constraints`` and ``--selector`` values -> requirements (all must hold)."""
    requirements: list[LabelSelectorRequirement] = []
    for option, values in (("--constraints", constraints), ("--selector", selectors)):
        for value in values:
            try:
                requirements.extend(parse_selector(value))
            except ValidationError as exc:
                raise JobSpecError(exc.problem, option=option) from None
    return requirements


def parse_result_path(value: str) -> dict[str, str]:
    """``outputs:/outputs`` -> ``{"Name": "outputs", "Path": "/outputs"}``."""
    name, colon, path = value.partition(":")
    if not colon or not name.strip() or not path.strip():
        raise JobSpecError(f"{value!r} is not of the form NAME:PATH", option="--output")
    return {"Name": name.strip(), "Path": path.strip()}


def parse_publisher(value: str) -> dict[str, Any]:
    """``local``, ``noop``, ``ipfs`` or ``s3://bucket/prefix`` -> a publisher spec."""
    text = value.strip()
    if text.lower().startswith("s3://"):
        parsed = urlparse(text)
        if not parsed.netloc:
            raise JobSpecError(f"{value!r} names no bucket", option="--publisher")
        return {"Type": "s3", "Params": {"Bucket": parsed.netloc, "Key": parsed.path[1:]}}
    if text.lower() in ("local", "noop", "ipfs"):
        return {"Type": text.lower(), "Params": {}}
    raise JobSpecError(f"{value!r} is not a publisher ({PUBLISHER_FORMS})", option="--publisher")


def _option_for(field_path: str) -> str:
    field_path = field_path.removeprefix("Job.")
    for prefix, option in _FIELD_OPTIONS:
        if field_path.startswith(prefix):
            return option
    return ""


def _checked(wire: dict[str, Any], warnings: Iterable[str]) -> BuiltJob:
    try:
        job = Job.from_wire(wire)
        found = validate_job(job)
    except ValidationError as exc:
        option = _option_for(exc.field)
        message = exc.problem if option else str(exc)
        raise JobSpecError(message, option=option) from None
    return BuiltJob(job=job, warnings=(*warnings, *found))


def build_wasm_job(spec: WasmRunSpec) -> BuiltJob:
    """The job ``bacalao wasm run`` submits: the module inlined (or fetched by URL) as an
    InputSource under ``/app``, and Bacalhau's current wasm engine shape pointing at it."""
    module = module_source(spec.module)
    warnings: list[str] = []
    if module.too_large:
        megabytes = (module.size_bytes or 0) / 1_000_000
        warnings.append(
            f"the module is {megabytes:.1f} MB and travels inside the job (more than "
            f"{LARGE_MODULE_BYTES // 1024 // 1024} MiB): consider serving it over https:// "
            "and passing that URL as MODULE"
        )
    inputs = [parse_input(value) for value in spec.inputs]
    if spec.count < 1:
        raise JobSpecError("must be at least 1", option="--count")
    if spec.timeout_s < 0:
        raise JobSpecError("must not be negative", option="--timeout")
    task: dict[str, Any] = {
        "Name": "main",
        "Engine": {
            "Type": "wasm",
            "Params": {
                "EntryModule": module.target,
                "Entrypoint": spec.entry_point or DEFAULT_ENTRYPOINT,
                "Parameters": list(spec.args),
                "EnvironmentVariables": parse_env(spec.env),
            },
        },
        "Publisher": parse_publisher(spec.publisher),
        "InputSources": [module.input_source, *inputs],
        "ResultPaths": [parse_result_path(value) for value in spec.outputs],
        "Resources": {"CPU": spec.cpu, "Memory": spec.memory},
        "Timeouts": {"ExecutionTimeout": spec.timeout_s},
    }
    constraints = parse_constraints(spec.constraints, spec.selectors)
    wire: dict[str, Any] = {
        "Type": "batch",
        "Count": spec.count,
        "Labels": parse_labels(spec.labels),
        "Constraints": [requirement.to_wire() for requirement in constraints],
        "Tasks": [task],
    }
    return _checked(wire, warnings)


def load_job(text: str, source: str) -> BuiltJob:
    """A Bacalhau v1 job from YAML or JSON text, with or without a top-level ``Job:`` key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        raise JobSpecError(f"{source} is not valid YAML or JSON{where}") from None
    if isinstance(data, dict) and len(data) == 1:
        (key, value), *_ = data.items()
        if str(key).lower() == "job" and isinstance(value, dict):
            data = value
    if not isinstance(data, dict):
        raise JobSpecError(f"{source} does not hold a job (expected a mapping with Tasks)")
    try:
        job = Job.from_wire(data)
        warnings = validate_job(job)
    except ValidationError as exc:
        raise JobSpecError(f"{source}: {exc}") from None
    return BuiltJob(job=job, warnings=tuple(warnings))


def job_to_yaml(job: Job) -> str:
    """The job as a YAML file ``bacalao job run`` accepts: fields left at their defaults and
    the ones the requester assigns (State, Version, times) are omitted."""
    wire = job.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for key in _SERVER_FIELDS:
        wire.pop(key, None)
    wire = {"Type": job.type, **wire}  # Bacalhau insists on a Type; say it even if default
    return yaml.safe_dump(wire, sort_keys=False, allow_unicode=True, width=100)
