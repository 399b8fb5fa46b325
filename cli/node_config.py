"""One configuration of a node: every ``serve`` setting, its default, and where it came from.

A setting comes from, first to last: the command line, the environment (``BACALAO_<NAME>``,
read by the flags themselves), a config file (``--config node.yaml``, or ``.json``, ``.toml``),
then the default here, the one place defaults live (the flags show these). A config file's
keys are the flags' names without the dashes in front, ``api-port`` or ``api_port``::

    node-type: compute
    broker: redis://10.0.0.5:6379/0
    labels: {zone: eu-1, disk: ssd}     # or a list: [zone=eu-1, disk=ssd]
    limit-total-cpu: 4
    allow-listed-local-paths: [/data:rw]

:func:`load_settings` reads and checks them (a key the file should not have, or a value of the
wrong kind, is an error naming the key); :meth:`NodeSettings.node_options` turns them into
what :class:`cli.stack.NodeProcess` runs with.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import AliasChoices, AliasGenerator, Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from cli.node_parsing import (
    parse_accept_probes,
    parse_allowed_paths,
    parse_data_locality,
    parse_ipfs_api,
    parse_job_selection,
    parse_labels,
    parse_lease_ttl,
    parse_node_type,
    parse_store,
    parse_total_limits,
)
from protocol.errors import ValidationError
from requester.limits import SubmissionLimits

if TYPE_CHECKING:
    from cli.stack import NodeOptions

_LIMITS = SubmissionLimits()
_FILE: ContextVar[Path | None] = ContextVar("bacalao_config_file", default=None)
FILE_SOURCES = {
    ".yaml": YamlConfigSettingsSource,
    ".yml": YamlConfigSettingsSource,
    ".json": JsonConfigSettingsSource,
    ".toml": TomlConfigSettingsSource,
}


def _either_spelling(name: str) -> AliasChoices:
    return AliasChoices(name, name.replace("_", "-"))


class NodeSettings(BaseSettings):
    """Every ``bacalao serve`` setting, named as its flag (``--api-port``: ``api_port``)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=_either_spelling),
        validate_default=True,
    )

    node_type: str = "requester,compute"
    broker: str = "memory://"
    name: str = "node"
    labels: list[str] = Field(default_factory=list)
    api_host: str = "127.0.0.1"
    # None: 1234, or a free port when 1234 is taken (the node says which)
    api_port: int | None = Field(default=None, ge=0, le=65535)
    limit_total_cpu: str | None = None  # None: 80% of the cores
    limit_total_memory: str | None = None  # None: 80% of the memory
    allow_listed_local_paths: list[str] = Field(default_factory=list)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    disconnect_after: float = Field(default=15.0, gt=0)
    bid_timeout: float = Field(default=10.0, gt=0)
    over_ask: int = Field(default=1, ge=1, le=20)
    default_queue_timeout: float = Field(default=600.0, gt=0)
    cluster_token: str | None = None
    allow_nodes: Path | None = None
    insecure: bool = False
    api_token: list[str] = Field(default_factory=list)
    api_tokens_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_execution_timeout: int = Field(default=_LIMITS.max_execution_timeout_s, ge=0)
    max_count: int = Field(default=_LIMITS.max_count, ge=0)
    max_inline_bytes: int = Field(default=_LIMITS.max_inline_bytes, ge=0)
    max_inputs: int = Field(default=_LIMITS.max_inputs, ge=0)
    max_result_paths: int = Field(default=_LIMITS.max_result_paths, ge=0)
    local_publisher_address: str = "127.0.0.1"
    local_publisher_listen: str | None = None  # None: local_publisher_address
    # None: 6001, or a free port when 6001 is taken (the node says which)
    local_publisher_port: int | None = Field(default=None, ge=0, le=65535)
    data_locality: str = "anywhere"
    job_selection_accept_networked: bool = False
    job_selection_reject_stateless: bool = False
    job_selection_probe_http: str | None = None
    job_selection_probe_exec: str | None = None
    job_selection_probe_timeout: float = Field(default=10.0, ge=0.1)
    bid_accept_probe_http: str | None = None
    bid_accept_probe_exec: str | None = None
    bid_accept_probe_timeout: float = Field(default=10.0, ge=0.1)
    docker_host: str | None = None
    ipfs_connect: str | None = None
    data_dir: Path | None = None  # None: ~/.bacalao
    store: str | None = None  # None: SQLite, jobs.db in the data dir
    lease_ttl: float = Field(default=15.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["text", "json"] = "text"

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_pairs(cls, value: Any) -> Any:
        """A file may give labels as a mapping; flags give ``k=v`` strings."""
        if isinstance(value, Mapping):
            return [f"{key}={val}" for key, val in value.items()]
        return [value] if isinstance(value, str) else value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("allow_listed_local_paths", "api_token", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("limit_total_cpu", "limit_total_memory", mode="before")
    @classmethod
    def _quantity_as_text(cls, value: Any) -> Any:
        """``limit-total-cpu: 2`` in a file means what ``--limit-total-cpu 2`` does."""
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return str(value) if is_number else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The flags read the environment themselves (and --help shows which variable).
        path = _FILE.get()
        if path is None:
            return (init_settings,)
        return (init_settings, FILE_SOURCES[path.suffix.lower()](settings_cls, path))

    def node_options(self, **overrides: Any) -> NodeOptions:
        """What a node runs with; ``overrides``: NodeOptions fields set by the caller
        (devstack names its nodes itself). Each value is checked here, before anything starts."""
        from cli.stack import NodeOptions, default_data_dir
        from requester.api_auth import api_tokens
        from requester.tls import tls_files

        requester, compute = parse_node_type(self.node_type)
        cpu, memory = parse_total_limits(self.limit_total_cpu, self.limit_total_memory)
        fields: dict[str, Any] = {
            "name": self.name,
            "data_dir": self.data_dir or default_data_dir(),
            "broker": self.broker,
            "requester": requester,
            "compute": compute,
            "labels": parse_labels(self.labels),
            "api_host": self.api_host,
            "api_port": self.api_port,
            "limit_cpu": cpu,
            "limit_memory": memory,
            "allowed_local_paths": parse_allowed_paths(self.allow_listed_local_paths),
            "heartbeat_interval_s": self.heartbeat_interval,
            "disconnect_after_s": self.disconnect_after,
            "bid_timeout_s": self.bid_timeout,
            "over_ask": self.over_ask,
            "default_queue_timeout_s": self.default_queue_timeout,
            "cluster_token": self.cluster_token,
            "allow_nodes": self.allow_nodes,
            "insecure": self.insecure,
            "api_tokens": api_tokens(self.api_token, self.api_tokens_file) if requester else (),
            "tls": tls_files(self.tls_cert, self.tls_key),
            "limits": SubmissionLimits(
                max_execution_timeout_s=self.max_execution_timeout,
                max_count=self.max_count,
                max_inline_bytes=self.max_inline_bytes,
                max_inputs=self.max_inputs,
                max_result_paths=self.max_result_paths,
            ),
            "local_publisher_host": self.local_publisher_address,
            "local_publisher_port": self.local_publisher_port,
            "local_publisher_listen": self.local_publisher_listen,
            "data_locality": parse_data_locality(self.data_locality),
            "accept_networked": self.job_selection_accept_networked,
            "job_selection": parse_job_selection(
                self.job_selection_reject_stateless,
                self.job_selection_probe_http,
                self.job_selection_probe_exec,
                self.job_selection_probe_timeout,
            ),
            "accept_probes": parse_accept_probes(
                self.bid_accept_probe_http,
                self.bid_accept_probe_exec,
                self.bid_accept_probe_timeout,
            ),
            "docker_host": self.docker_host,
            "ipfs_api": parse_ipfs_api(self.ipfs_connect),
            "store": parse_store(self.store) if requester else None,
            "lease_ttl_s": (
                parse_lease_ttl(self.lease_ttl, self.heartbeat_interval)
                if requester
                else self.lease_ttl
            ),
        }
        fields.update(overrides)
        return NodeOptions(**fields)


class DevstackSettings(NodeSettings):
    """A devstack's: its nodes share one host and start in a hurry."""

    heartbeat_interval: float = Field(default=1.0, gt=0)
    disconnect_after: float = Field(default=5.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "warning"


DEFAULTS = NodeSettings()
DEVSTACK_DEFAULTS = DevstackSettings()
"""The defaults, for the flags to show."""


def load_settings(
    given: Mapping[str, Any],
    config_file: Path | None = None,
    kind: type[NodeSettings] = NodeSettings,
) -> NodeSettings:
    """``given`` (the flags set on the command line or through their variables) over
    ``config_file`` over ``kind``'s defaults; a ValidationError naming the setting at fault."""
    if config_file is not None:
        if config_file.suffix.lower() not in FILE_SOURCES:
            kinds = ", ".join(sorted(FILE_SOURCES))
            raise ValidationError("config", f"{config_file}: not a config file ({kinds})")
        if not config_file.is_file():
            problem = "not a file" if config_file.exists() else "no such file"
            raise ValidationError("config", f"{config_file}: {problem}")
    token = _FILE.set(config_file)
    try:
        return kind(**given)
    except PydanticValidationError as exc:
        raise _named(exc, config_file) from None
    except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        problem = " ".join(str(exc).split())  # YAML's errors span lines
        raise ValidationError("config", f"{config_file} does not parse: {problem}") from None
    except (ValueError, TypeError):  # parsed, but a list or a value rather than a mapping
        raise ValidationError("config", f"{config_file}: expected key: value settings") from None
    except OSError as exc:
        raise ValidationError("config", f"{config_file}: {exc.strerror or exc}") from None
    finally:
        _FILE.reset(token)


def _named(exc: PydanticValidationError, config_file: Path | None) -> ValidationError:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]).replace("_", "-") or "config"
    where = f" (in {config_file})" if config_file is not None else ""
    if error["type"] == "extra_forbidden":
        return ValidationError(key, f"not a setting of a node{where}")
    if error["type"] == "model_type":  # the file is not a mapping of settings
        return ValidationError("config", f"{config_file}: expected key: value settings")
    return ValidationError(key, f"{error['msg']}{where}")
