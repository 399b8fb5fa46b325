"""From command-line values (or a job file) to a :class:`protocol.job.Job`: pure functions.

Nothing here talks to the network or prints; every problem is a
:class:`~cli.errors.JobSpecError` that names the option at fault.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cli.errors import JobSpecError
from cli.inputs import LARGE_MODULE_BYTES, module_source, parse_input
from cli.publishers import parse_publisher
from protocol.errors import ValidationError
from protocol.job import EngineSpec, InputSource, Job, LabelSelectorRequirement, result_folder
from protocol.selectors import parse_selector
from protocol.specs import PublisherSpec, validate_job
from protocol.specs.engines import DockerParams, WasmParams
from protocol.verification import VERIFY_KEY
from protocol.verification import problem as verification_problem

DEFAULT_ENTRYPOINT = "_start"
DEFAULT_PUBLISHER = "local"
DEFAULT_RESULT_PATH = {"Name": "outputs", "Path": "/outputs"}
_SERVER_FIELDS = ("State", "Version", "Revision", "CreateTime", "ModifyTime")
_SERVER_FIELDS_LOWER = frozenset(name.lower() for name in ("ID", *_SERVER_FIELDS))
_DESCRIBE_KEYS = frozenset({"job", "executions", "history"})
# Where a problem in the built job comes from, most specific first (after the engine's own).
_FIELD_OPTIONS = (
    ("Tasks[0].Engine.Params.EnvironmentVariables", "--env"),
    ("Tasks[0].Resources.Memory", "--memory"),
    ("Tasks[0].Resources.CPU", "--cpu"),
    ("Tasks[0].Resources.Disk", "--disk"),
    ("Tasks[0].Resources.GPU", "--gpu"),
    ("Tasks[0].Network", "--network"),
    ("Tasks[0].InputSources", "--input"),
    ("Tasks[0].ResultPaths", "--output"),
    ("Tasks[0].Publisher", "--publisher"),
    ("Tasks[0].Timeouts", "--timeout"),
    ("Count", "--count"),
    ("Labels", "--labels"),
    ("Constraints", "--constraints"),
    ("constraints", "--constraints"),
)
_WASM_FIELD_OPTIONS = (
    ("Tasks[0].Engine.Params.Entrypoint", "--entry-point"),
    ("Tasks[0].Engine.Params.EntryModule", "MODULE"),
)
_DOCKER_FIELD_OPTIONS = (
    ("Tasks[0].Engine.Params.Image", "IMAGE"),
    ("Tasks[0].Engine.Params.Entrypoint", "--entrypoint"),
    ("Tasks[0].Engine.Params.WorkingDirectory", "--workdir"),
)


@dataclass(frozen=True)
class BuiltJob:
    """A job ready to submit, and what the user should hear about it first."""

    job: Job
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What every ``run`` command takes besides its program, as typed on the command line."""

    inputs: Sequence[str] = ()
    outputs: Sequence[str] = ()
    publisher: str = DEFAULT_PUBLISHER
    env: Sequence[str] = ()
    count: int = 1
    timeout_s: int = 0
    memory: str = ""
    cpu: str = ""
    disk: str = ""
    gpu: str = ""
    network: str = ""
    domains: Sequence[str] = ()
    labels: Sequence[str] = ()
    constraints: Sequence[str] = ()
    selectors: Sequence[str] = ()
    verify: str = ""


@dataclass(frozen=True, kw_only=True)
class WasmRunSpec(TaskSpec):
    """The values of ``bacalao wasm run``."""

    module: str
    args: Sequence[str] = ()
    entry_point: str = DEFAULT_ENTRYPOINT


@dataclass(frozen=True, kw_only=True)
class DockerRunSpec(TaskSpec):
    """The values of ``bacalao docker run``: ARGS replace the image's CMD, ``entrypoint`` its
    ENTRYPOINT (each value split at commas, as Bacalhau does)."""

    image: str
    args: Sequence[str] = ()
    entrypoint: Sequence[str] = ()
    workdir: str = ""


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
    """``outputs:/outputs`` (or Bacalhau's newer ``outputs=/outputs``) -> a ResultPath."""
    match = re.fullmatch(r"([^:=]*)[:=](.*)", value.strip(), flags=re.DOTALL)
    if match is None or not match.group(1).strip() or not match.group(2).strip():
        raise JobSpecError(f"{value!r} is not of the form NAME:PATH", option="--output")
    return {"Name": match.group(1).strip(), "Path": match.group(2).strip()}


def with_default_result_path(
    paths: list[dict[str, str]], publisher: PublisherSpec
) -> list[dict[str, str]]:
    """Bacalhau's docker rule: ``outputs:/outputs`` is always added unless that name or
    path is taken (and, here, unless the noop publisher would throw it away)."""
    taken = any(
        result_folder(path["Name"]) == DEFAULT_RESULT_PATH["Name"]
        or path["Path"].rstrip("/") == DEFAULT_RESULT_PATH["Path"]
        for path in paths
    )
    if taken or publisher.type == "noop":
        return paths
    return [*paths, dict(DEFAULT_RESULT_PATH)]


def parse_entrypoint(values: Iterable[str]) -> list[str]:
    """``["sh,-c"]`` or ``["sh", "-c"]`` -> ``["sh", "-c"]``: Bacalhau splits each value at
    commas (CSV, so ``'"a,b"'`` stays one word)."""
    words: list[str] = []
    for value in values:
        try:
            rows = list(csv.reader([value]))
        except csv.Error as exc:
            raise JobSpecError(
                f"{value!r} cannot be split at commas ({exc})", option="--entrypoint"
            ) from None
        for row in rows:
            words.extend(row)
    return words


def _option_for(field_path: str, engine_options: Iterable[tuple[str, str]]) -> str:
    field_path = field_path.removeprefix("Job.")
    for prefix, option in (*engine_options, *_FIELD_OPTIONS):
        if field_path.startswith(prefix):
            return option
    return ""


def _checked(
    wire: dict[str, Any], warnings: Iterable[str], engine_options: Iterable[tuple[str, str]]
) -> BuiltJob:
    try:
        job = Job.from_wire(wire)
        found = validate_job(job)
    except ValidationError as exc:
        option = _option_for(exc.field, engine_options)
        message = exc.problem if option else str(exc)
        raise JobSpecError(message, option=option) from None
    return BuiltJob(job=job, warnings=(*warnings, *found))


def _job_wire(
    spec: TaskSpec,
    engine: EngineSpec,
    *,
    program_inputs: Sequence[InputSource] = (),
    default_outputs: bool = False,
) -> dict[str, Any]:
    """The job around ``engine``: everything :class:`TaskSpec` says, in wire shape but for
    the specs, which are typed models already."""
    inputs = [parse_input(value) for value in spec.inputs]
    if spec.count < 1:
        raise JobSpecError("must be at least 1", option="--count")
    if spec.timeout_s < 0:
        raise JobSpecError("must not be negative", option="--timeout")
    publisher = parse_publisher(spec.publisher)
    result_paths = [parse_result_path(value) for value in spec.outputs]
    if default_outputs:
        result_paths = with_default_result_path(result_paths, publisher)
    task: dict[str, Any] = {
        "Name": "main",
        "Engine": engine,
        "Publisher": publisher,
        "InputSources": [*program_inputs, *inputs],
        "ResultPaths": result_paths,
        "Resources": {"CPU": spec.cpu, "Memory": spec.memory, "Disk": spec.disk, "GPU": spec.gpu},
        "Network": {"Type": spec.network, "Domains": list(spec.domains)},
        "Timeouts": {"ExecutionTimeout": spec.timeout_s},
    }
    constraints = parse_constraints(spec.constraints, spec.selectors)
    job: dict[str, Any] = {
        "Type": "batch",
        "Count": spec.count,
        "Labels": parse_labels(spec.labels),
        "Constraints": [requirement.to_wire() for requirement in constraints],
        "Tasks": [task],
    }
    if spec.verify:
        job["Meta"] = {VERIFY_KEY: spec.verify}
        problem = verification_problem(Job.model_validate(job))
        if problem:
            raise JobSpecError(problem, option="--verify")
    return job


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
    params = WasmParams(
        entry_module=module.target,
        entrypoint=spec.entry_point or DEFAULT_ENTRYPOINT,
        parameters=list(spec.args),
        environment_variables=parse_env(spec.env),
    )
    engine = EngineSpec(type="wasm", params=params)
    wire = _job_wire(spec, engine, program_inputs=[module.input_source])
    return _checked(wire, warnings, _WASM_FIELD_OPTIONS)


def build_docker_job(spec: DockerRunSpec) -> BuiltJob:
    """The job ``bacalao docker run`` submits, as ``bacalhau docker run`` builds it: ARGS are
    the Parameters (the image's CMD), ``--entrypoint`` replaces its ENTRYPOINT, and
    ``outputs:/outputs`` is published unless that name or path is taken."""
    wire_params = {
        "Image": spec.image,
        "Entrypoint": parse_entrypoint(spec.entrypoint),
        "Parameters": list(spec.args),
        "EnvironmentVariables": parse_env(spec.env),
        "WorkingDirectory": spec.workdir,
    }
    try:
        params = DockerParams.from_wire(wire_params, prefix="Tasks[0].Engine.Params")
    except ValidationError as exc:
        option = _option_for(exc.field, _DOCKER_FIELD_OPTIONS)
        raise JobSpecError(exc.problem if option else str(exc), option=option) from None
    wire = _job_wire(spec, EngineSpec(type="docker", params=params), default_outputs=True)
    return _checked(wire, (), _DOCKER_FIELD_OPTIONS)


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
    if not isinstance(data, dict):
        raise JobSpecError(f"{source} does not hold a job (expected a mapping with Tasks)")
    data = _as_new_job(_unwrapped(data, source))
    try:
        job = Job.from_wire(data)
        warnings = validate_job(job)
    except ValidationError as exc:
        raise JobSpecError(f"{source}: {exc}") from None
    return BuiltJob(job=job, warnings=tuple(warnings))


def _unwrapped(data: dict[Any, Any], source: str) -> dict[Any, Any]:
    """The job of ``{Job: {...}}``, or of what ``job describe --output yaml|json`` prints
    (``{Job, Executions, History}``); a bare job as it is. Keys in any case, as Go reads them."""
    keys = {str(key).lower(): key for key in data}
    if "job" not in keys or "tasks" in keys:
        return data
    inner = data[keys["job"]]
    if not isinstance(inner, dict):
        raise JobSpecError(f"{source}: Job: must be a mapping with Tasks")
    others = sorted(str(key) for name, key in keys.items() if name not in _DESCRIBE_KEYS)
    if others:
        raise JobSpecError(
            f"{source} holds a Job and also {', '.join(others)}: expected a job, {{Job: ...}} "
            "or the output of `bacalao job describe` (Job, Executions, History)"
        )
    return inner


def _as_new_job(data: dict[Any, Any]) -> dict[Any, Any]:
    """``data`` without the fields the requester sets (ID, State, Revision, times...), so a
    job read back from the requester is submitted again as a new job. A Name the requester
    defaulted to the old ID goes too: the new job gets its own."""
    fields = {str(key).lower(): key for key in data}
    job_id = data.get(fields.get("id", ""), "")
    dropped = {fields[name] for name in _SERVER_FIELDS_LOWER if name in fields}
    if "name" in fields and job_id and data[fields["name"]] == job_id:
        dropped.add(fields["name"])
    return {key: value for key, value in data.items() if key not in dropped}


def job_to_yaml(job: Job) -> str:
    """The job as a YAML file ``bacalao job run`` accepts: fields left at their defaults and
    the ones the requester assigns (State, Version, times) are omitted."""
    wire = job.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for key in _SERVER_FIELDS:
        wire.pop(key, None)
    for task in wire.get("Tasks", []):
        specs = [task.get("Engine"), task.get("Publisher")]
        specs += [source.get("Source") for source in task.get("InputSources", [])]
        for spec in specs:  # a typed spec's params at their defaults: as if not given
            if isinstance(spec, dict) and spec.get("Params") == {}:
                del spec["Params"]
    wire = {"Type": job.type, **wire}  # Bacalhau insists on a Type; say it even if default
    return yaml.safe_dump(wire, sort_keys=False, allow_unicode=True, width=100)
