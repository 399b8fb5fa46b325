"""The Bacalhau v1 Job model: structure, defaults and the checks Bacalhau makes.

A task's engine, input sources and publisher are typed specs of :mod:`protocol.specs`
(:class:`EngineSpec`, :class:`SourceSpec`, :class:`PublisherSpec`): validating a job parses
their Params into each Type's model, so nothing downstream parses them again. This module
checks the shape of the job itself; :func:`protocol.specs.validate_job` what needs every
spec at once (known types, the wasm EntryModule among the inputs).
"""

from __future__ import annotations

import enum
import posixpath
from decimal import Decimal
from typing import Any, ClassVar, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from protocol.bookkeeping import NOT_QUEUED, Queueing
from protocol.labels import key_problem, parse_integer, value_problem
from protocol.paths import NAME_MAX_BYTES, path_problem, trimmed
from protocol.resources import Resources
from protocol.specs.engines import EngineSpec as EngineSpec
from protocol.specs.publishers import PublisherSpec as PublisherSpec
from protocol.specs.sources import InputSource as InputSource
from protocol.specs.sources import SourceSpec as SourceSpec
from protocol.units import INT64_MAX, parse_bytes, parse_cpu, parse_gpu, shown, shown_number
from protocol.wire import FieldValueError, WireInt, WireModel, is_stored

JOB_TYPES = ("batch", "ops", "daemon", "service")
SUPPORTED_JOB_TYPES = ("batch", "ops")
SELECTOR_OPERATORS = ("=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt")
# Half the longest Go time.Duration (2**63 - 1 ns, 292 years): a node can still add a grace
# period, or now, to a timeout in int64 nanoseconds (a socket timeout overflows past 2**63 ns).
MAX_TIMEOUT_S = INT64_MAX // 1_000_000_000 // 2


NOOP_PUBLISHER = PublisherSpec(type="noop")  # the default; frozen, so one will do


def _name_problem(value: str) -> str | None:
    """Bacalhau's rule for job, task and namespace names: not blank, no NUL character."""
    if not value.strip():
        return "must not be blank"
    if "\x00" in value:
        return "must not contain a NUL character"
    return None


class SpecConfig(WireModel):
    """An untyped ``{Type, Params}``: what a publisher records of a result (see
    :data:`protocol.specs.RESULTS`), read by ``job get``. A task's specs are typed."""

    type: str = Field(alias="Type")
    params: dict[str, Any] = Field(default_factory=dict, alias="Params")

    @field_validator("type")
    @classmethod
    def _type_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("params", mode="before")
    @classmethod
    def _params_none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


def result_folder(name: str) -> str:
    """The folder inside the results folder that holds a ResultPath's files: its Name as
    Bacalhau joins it to that folder (Go's ``filepath.Join`` cleans it), so Bacalhau's
    documented ``Name: /outputs`` is the folder ``outputs``, as are ``outputs/`` and
    ``./outputs``. ``""`` when the Name is only slashes."""
    inner = name.strip("/")
    return posixpath.normpath(inner) if inner else ""


class ResultPath(WireModel):
    """A folder of the task published with its results. ``Name`` names the result's folder
    (see :func:`result_folder`: ``/outputs`` is ``outputs``, as in Bacalhau)."""

    name: str = Field(alias="Name")
    path: str = Field(alias="Path")

    @field_validator("name", "path", mode="before")
    @classmethod
    def _trim(cls, value: Any) -> Any:
        return trimmed(value)

    @field_validator("name")
    @classmethod
    def _name_is_folder_name(cls, value: str, info: ValidationInfo) -> str:
        reserved = (".", "..", "stdout", "stderr", "exitCode")
        if is_stored(info):
            return value
        folder = result_folder(value)
        if not folder or "/" in folder or "\x00" in value or folder in reserved:
            raise ValueError(f"{shown(value)} is not a usable result name")
        if len(folder.encode()) > NAME_MAX_BYTES:
            raise ValueError(
                f"is {len(folder.encode())} bytes long, over the {NAME_MAX_BYTES}-byte limit of "
                "a folder name"
            )
        return value

    @field_validator("path")
    @classmethod
    def _path_absolute(cls, value: str, info: ValidationInfo) -> str:
        problem = None if is_stored(info) else path_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def folder(self) -> str:
        """The folder of the results that holds this result's files."""
        return result_folder(self.name)


class ResourcesConfig(WireModel):
    """What a task asks for, as strings: ``CPU: 500m``, ``Memory: 512Mb``, ``GPU: "1"``.

    A JSON number is taken too (``CPU: 1`` in a YAML job file means one core, as ``"1"``
    would), though Go's decoder refuses one; ``true`` or ``false`` never is.
    """

    cpu: str = Field(default="", alias="CPU")
    memory: str = Field(default="", alias="Memory")
    disk: str = Field(default="", alias="Disk")
    gpu: str = Field(default="", alias="GPU")

    @field_validator("cpu", "memory", "disk", "gpu", mode="before")
    @classmethod
    def _numbers_as_strings(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f'must be a quantity such as "1" or 1, not {str(value).lower()}')
        if isinstance(value, int):
            if value.bit_length() > 128:  # str() of a huge int is slow, then refused anyway
                raise ValueError(f"{shown_number(value)} is too large")
            return str(value)
        if isinstance(value, float):  # 1.5e9 -> "1500000000", 1e-05 -> "0.00001"
            return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str, info: ValidationInfo) -> str:
        if value and not is_stored(info):
            parse_cpu(value)
        return value

    @field_validator("memory", "disk")
    @classmethod
    def _size(cls, value: str, info: ValidationInfo) -> str:
        if value and not is_stored(info):
            parse_bytes(value)
        return value

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, value: str, info: ValidationInfo) -> str:
        if value and not is_stored(info):
            parse_gpu(value)
        return value

    def parsed(self) -> Resources:
        return Resources(
            cpu=parse_cpu(self.cpu) if self.cpu else 0.0,
            memory=parse_bytes(self.memory) if self.memory else 0,
            disk=parse_bytes(self.disk) if self.disk else 0,
            gpu=parse_gpu(self.gpu) if self.gpu else 0,
        )


class NetworkType(enum.StrEnum):
    NONE = "None"
    HOST = "Host"
    FULL = "Full"
    HTTP = "HTTP"


class NetworkConfig(WireModel):
    type: NetworkType = Field(default=NetworkType.NONE, alias="Type")
    domains: list[str] = Field(default_factory=list, alias="Domains")

    @field_validator("type", mode="before")
    @classmethod
    def _type_any_case(cls, value: Any) -> Any:
        if isinstance(value, str):
            for member in NetworkType:
                if member.value.lower() == value.strip().lower():
                    return member
            if not value.strip():
                return NetworkType.NONE
        return value


class TimeoutConfig(WireModel):
    """Whole seconds, at most :data:`MAX_TIMEOUT_S`; 0 means "use the node's default"."""

    execution_timeout: WireInt = Field(default=0, ge=0, alias="ExecutionTimeout")
    queue_timeout: WireInt = Field(default=0, ge=0, alias="QueueTimeout")
    total_timeout: WireInt = Field(default=0, ge=0, alias="TotalTimeout")

    @field_validator("execution_timeout", "queue_timeout", "total_timeout")
    @classmethod
    def _fits_a_duration(cls, value: int, info: ValidationInfo) -> int:
        if value > MAX_TIMEOUT_S and not is_stored(info):
            raise ValueError(
                f"{shown_number(value)} s is too long (at most {MAX_TIMEOUT_S} s, 146 years)"
            )
        return value


class LabelSelectorRequirement(WireModel):
    """A Kubernetes-style selector: ``{Key: region, Operator: in, Values: [eu, us]}``."""

    key: str = Field(alias="Key")
    operator: str = Field(alias="Operator")
    values: list[str] = Field(default_factory=list, alias="Values")

    @field_validator("key")
    @classmethod
    def _qualified_name(cls, value: str, info: ValidationInfo) -> str:
        problem = None if is_stored(info) else key_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("values", mode="before")
    @classmethod
    def _null_is_no_values(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("values")
    @classmethod
    def _label_values(cls, values: list[str], info: ValidationInfo) -> list[str]:
        if is_stored(info):
            return values
        for index, value in enumerate(values):
            problem = value_problem(value)
            if problem:
                raise FieldValueError((index,), problem)
        return values

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        normalized = value.strip().lower()
        if normalized not in SELECTOR_OPERATORS:
            known = ", ".join(SELECTOR_OPERATORS)
            raise ValueError(f"unknown operator {value!r} (known: {known})")
        return normalized

    @model_validator(mode="after")
    def _values_fit_operator(self, info: ValidationInfo) -> Self:
        if is_stored(info):
            return self
        count = len(self.values)
        where = ("Values",)
        if self.operator in ("exists", "!") and count:
            raise FieldValueError(where, f"operator {self.operator!r} takes no values")
        if self.operator in ("=", "==", "!=", "gt", "lt") and count != 1:
            raise FieldValueError(where, f"operator {self.operator!r} takes exactly one value")
        if self.operator in ("in", "notin") and not count:
            raise FieldValueError(where, f"operator {self.operator!r} needs at least one value")
        if self.operator in ("gt", "lt") and parse_integer(self.values[0]) is None:
            raise FieldValueError(
                (*where, 0), f"operator {self.operator!r} needs an integer, not {self.values[0]!r}"
            )
        return self


class Task(WireModel):
    name: str = Field(default="main", alias="Name")
    engine: EngineSpec = Field(alias="Engine")
    publisher: PublisherSpec = Field(default=NOOP_PUBLISHER, alias="Publisher")
    env: dict[str, str] = Field(default_factory=dict, alias="Env")
    meta: dict[str, str] = Field(default_factory=dict, alias="Meta")
    input_sources: list[InputSource] = Field(default_factory=list, alias="InputSources")
    result_paths: list[ResultPath] = Field(default_factory=list, alias="ResultPaths")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, alias="Resources")
    network: NetworkConfig = Field(default_factory=NetworkConfig, alias="Network")
    timeouts: TimeoutConfig = Field(default_factory=TimeoutConfig, alias="Timeouts")

    @field_validator("name", mode="before")
    @classmethod
    def _default_name(cls, value: Any) -> Any:
        return "main" if value is None or value == "" else value

    @field_validator("name")
    @classmethod
    def _usable_name(cls, value: str, info: ValidationInfo) -> str:
        problem = None if is_stored(info) else _name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("env", "meta", "input_sources", "result_paths", "resources", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: Any) -> Any:
        if value is not None:
            return value
        return {} if info.field_name in ("env", "meta", "resources") else []

    @field_validator("publisher", "network", "timeouts", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        if value is not None:
            return value
        return NOOP_PUBLISHER if info.field_name == "publisher" else {}

    @model_validator(mode="after")
    def _unique_names_and_paths(self, info: ValidationInfo) -> Self:
        """As Bacalhau: no two inputs share an Alias or Target, no two results a Name or
        Path (a Name is the result's folder, so ``/out`` and ``out`` are the same one). Paths
        compare after ``/out/`` -> ``/out``."""
        if is_stored(info):
            return self
        _unique("InputSources", "Alias", [source.alias for source in self.input_sources])
        targets = [source.target for source in self.input_sources]
        _unique("InputSources", "Target", [posixpath.normpath(t) if t else t for t in targets])
        _unique("ResultPaths", "Name", [result.folder for result in self.result_paths])
        paths = [posixpath.normpath(result.path) for result in self.result_paths]
        _unique("ResultPaths", "Path", paths)
        return self


def _unique(items: str, field: str, values: list[str]) -> None:
    """Raise naming the first of ``items`` whose non-empty ``field`` repeats an earlier one."""
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value and value in first:
            raise FieldValueError(
                (items, index, field),
                f"{value!r} is already the {field} of {items}[{first[value]}]",
            )
        first.setdefault(value, index)


class JobStateType(enum.StrEnum):
    UNDEFINED = "Undefined"
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in (JobStateType.COMPLETED, JobStateType.FAILED, JobStateType.STOPPED)


class JobState(WireModel):
    state_type: JobStateType = Field(default=JobStateType.PENDING, alias="StateType")
    message: str = Field(default="", alias="Message")
    details: dict[str, str] = Field(default_factory=dict, alias="Details")


class Job(WireModel):
    id: str = Field(default="", alias="ID")
    name: str = Field(default="", alias="Name")
    namespace: str = Field(default="default", alias="Namespace")
    type: str = Field(default="batch", alias="Type")
    priority: WireInt = Field(default=0, ge=0, alias="Priority")
    count: WireInt = Field(default=0, ge=0, alias="Count")
    constraints: list[LabelSelectorRequirement] = Field(default_factory=list, alias="Constraints")
    meta: dict[str, str] = Field(default_factory=dict, alias="Meta")
    labels: dict[str, str] = Field(default_factory=dict, alias="Labels")
    tasks: list[Task] = Field(alias="Tasks")
    state: JobState = Field(default_factory=JobState, alias="State")
    version: WireInt = Field(default=0, alias="Version")
    revision: WireInt = Field(default=0, alias="Revision")
    create_time: WireInt = Field(default=0, alias="CreateTime")
    modify_time: WireInt = Field(default=0, alias="ModifyTime")
    # The requester's bookkeeping, kept in the store's columns: an instance attribute that
    # with_queueing sets, not a field, so never serialised, never read from JSON, and free
    # when unset (a pydantic private attribute costs every construction ~4 us).
    _queueing: ClassVar[Queueing] = NOT_QUEUED

    @field_validator("namespace", mode="before")
    @classmethod
    def _default_namespace(cls, value: Any) -> Any:
        return "default" if value is None or value == "" else value

    @field_validator("priority", "count")
    @classmethod
    def _fits_go_int(cls, value: int, info: ValidationInfo) -> int:
        if value > INT64_MAX and not is_stored(info):
            raise ValueError(f"{shown_number(value)} is too large (at most {INT64_MAX}, Go's int)")
        return value

    @field_validator("name", "namespace")
    @classmethod
    def _usable_name(cls, value: str, info: ValidationInfo) -> str:
        checked = (value or info.field_name == "namespace") and not is_stored(info)
        problem = _name_problem(value) if checked else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if value is None or value == "":
            return "batch"
        if not isinstance(value, str) or value.lower() not in JOB_TYPES:
            raise ValueError(f"unknown job type {value!r} (known: {', '.join(JOB_TYPES)})")
        if value.lower() not in SUPPORTED_JOB_TYPES:
            raise ValueError(
                f"job type {value!r} is not supported yet (bacalao runs batch and ops jobs)"
            )
        return value.lower()

    @field_validator("constraints", "meta", "labels", "state", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: Any) -> Any:
        if value is not None:
            return value
        return [] if info.field_name == "constraints" else {}

    @field_validator("tasks")
    @classmethod
    def _one_task(cls, value: list[Task]) -> list[Task]:
        if len(value) != 1:
            raise ValueError(f"a job has exactly one task, got {len(value)}")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> Self:
        if self.count == 0 and self.type == "batch":
            self.count = 1
        if not self.name:
            self.name = self.id
        return self

    @property
    def task(self) -> Task:
        return self.tasks[0]

    @property
    def terminal(self) -> bool:
        return self.state.state_type.terminal

    @property
    def queueing(self) -> Queueing:
        """The requester's bookkeeping while the job waits for nodes (see
        :mod:`protocol.bookkeeping`)."""
        return self._queueing

    def with_queueing(self, queueing: Queueing) -> Self:
        """A shallow copy of the job with this bookkeeping."""
        copied = self.model_copy()
        object.__setattr__(copied, "_queueing", queueing)  # copies keep it (__dict__)
        return copied
