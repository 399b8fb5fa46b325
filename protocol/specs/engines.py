"""Engines: the params of ``wasm``, ``docker`` and ``noop``, their family and the typed
:class:`EngineSpec`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, PlainSerializer, field_validator

from protocol.specs.family import PARSED, OtherParams, SpecFamily, TypedSpec
from protocol.specs.sources import InputSource
from protocol.wire import WireModel


def env_map(value: Any) -> Any:
    """Accept ``{"K": "V"}`` or ``["K=V", ...]`` (both shapes occur in Bacalhau specs)."""
    if value is None:
        return {}
    if isinstance(value, list):
        result: dict[str, str] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"{item!r} is not of the form KEY=VALUE")
            key, _, val = item.partition("=")
            result[key] = val
        return result
    return value


class WasmParams(WireModel):
    """Two shapes of EntryModule are accepted.

    * current Bacalhau: a string, the Target of one of the task's InputSources;
    * Bacalhau v1.1-v1.6: an embedded InputSource, with ``EntryPoint`` and a map of
      ``EnvironmentVariables``.
    """

    entry_module: str | InputSource = Field(alias="EntryModule")
    entrypoint: str = Field(default="_start", alias="Entrypoint")
    parameters: list[str] = Field(default_factory=list, alias="Parameters")
    environment_variables: dict[str, str] = Field(
        default_factory=dict, alias="EnvironmentVariables"
    )
    import_modules: list[InputSource] = Field(default_factory=list, alias="ImportModules")
    # v1.1-v1.6's ``EntryPoint`` is ``Entrypoint`` to WireModel, which matches keys in any case

    @field_validator("entry_module", mode="before")
    @classmethod
    def _entry_module_present(cls, value: Any) -> Any:
        if value is None or value == "" or value == {}:
            raise ValueError("must name the module to run")
        return value

    @field_validator("entrypoint", mode="before")
    @classmethod
    def _default_entrypoint(cls, value: Any) -> Any:
        return value or "_start"

    @field_validator("parameters", "import_modules", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return env_map(value)


def _as_assignments(env: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in env.items()]


# Bacalhau's docker engine writes its EnvironmentVariables as ``["K=V", ...]`` (wasm: a map)
DockerEnv = Annotated[dict[str, str], PlainSerializer(_as_assignments, return_type=list[str])]


class DockerParams(WireModel):
    image: str = Field(alias="Image")
    entrypoint: list[str] = Field(default_factory=list, alias="Entrypoint")
    parameters: list[str] = Field(default_factory=list, alias="Parameters")
    environment_variables: DockerEnv = Field(default_factory=dict, alias="EnvironmentVariables")
    working_directory: str = Field(default="", alias="WorkingDirectory")

    @field_validator("image")
    @classmethod
    def _image_present(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name an image")
        return value.strip()

    @field_validator("entrypoint", "parameters", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        return env_map(value)

    @field_validator("working_directory")
    @classmethod
    def _workdir_absolute(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path")
        return value


class NoopParams(WireModel):
    """Runs nothing; for tests and benchmarks. ``SleepSeconds`` simulates work."""

    exit_code: int = Field(default=0, ge=0, le=255, alias="ExitCode")
    stdout: str = Field(default="", alias="Stdout")
    stderr: str = Field(default="", alias="Stderr")
    sleep_seconds: float = Field(default=0.0, ge=0, le=3600, alias="SleepSeconds")


ENGINES = SpecFamily("engine", {"wasm": WasmParams, "docker": DockerParams, "noop": NoopParams})

EngineParams = WasmParams | DockerParams | NoopParams | OtherParams


class EngineSpec(TypedSpec):
    """What runs the task: ``{Type: wasm, Params: {EntryModule: ..., ...}}``."""

    family = ENGINES
    params: Annotated[EngineParams, PARSED] = Field(default_factory=OtherParams, alias="Params")
