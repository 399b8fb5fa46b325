"""What a job's container looks like (pure: request in, container spec out) and what its end
state means.

Isolation choices, for a batch job that may run any image:

* no privileges, ``no-new-privileges`` (setuid binaries cannot raise privileges), and the
  capabilities a batch job has no use for dropped: ``NET_RAW`` (raw sockets: spoofing and
  sniffing on a host network; ping still works through ICMP sockets), ``MKNOD`` (device
  nodes) and ``AUDIT_WRITE``. Dropping *all* capabilities would break ordinary images: root
  in the container could no longer write to folders it does not own (``DAC_OVERRIDE``), nor
  ``chown``, ``setuid`` to a service user or install packages;
* a pids limit, so a fork bomb stays in its container;
* network ``none`` unless the job asks for ``Host`` or ``Full`` (whether this node accepts
  networked jobs at all is decided when bidding: ``compute.bidding.network``). ``HTTP``
  (domain filtering) needs a filtering proxy this executor does not have, so it is refused
  rather than widened to full access;
* the ``json-file`` log driver, so stdout and stderr can always be read back, apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker.types

from compute.executors.base import Mount, RunOutcome, RunRequest, task_env
from protocol.errors import ExecutionError, ValidationError
from protocol.job import EngineSpec, NetworkConfig, NetworkType
from protocol.specs.engines import DockerParams
from protocol.units import readable_bytes

LABEL_MANAGED = "bacalao.managed"
LABEL_EXECUTION = "bacalao.execution-id"
LABEL_JOB = "bacalao.job-id"

MEMORY_EXIT_CODE = 137  # 128 + SIGKILL, what the kernel's OOM killer leaves
SECURITY_OPT = ("no-new-privileges",)
CAP_DROP = ("NET_RAW", "MKNOD", "AUDIT_WRITE")
DEFAULT_PIDS_LIMIT = 4096


def docker_params(engine: EngineSpec) -> DockerParams:
    try:
        return engine.params_as(DockerParams, "Engine")
    except ValidationError as exc:
        raise ExecutionError(f"docker: {exc}") from None


def network_mode(network: NetworkConfig, full_network: str = "bridge") -> str:
    """The container's ``network_mode`` for the job's Network.Type."""
    if network.type == NetworkType.NONE:
        return "none"
    if network.type == NetworkType.HOST:
        return "host"
    if network.type == NetworkType.FULL:
        return full_network
    raise ExecutionError(
        f"docker: Network {network.type} (domain filtering) is not supported by this node; "
        "ask for Full or Host"
    )


def container_env(request: RunRequest, params: DockerParams) -> dict[str, str]:
    """The job's env, then the engine's EnvironmentVariables, then the execution's own."""
    return task_env(request, params.environment_variables)


@dataclass(frozen=True)
class ContainerSpec:
    """One execution's container; :meth:`create_kwargs` is what the SDK's create takes."""

    image: str
    labels: Mapping[str, str]
    environment: Mapping[str, str]
    network_mode: str
    entrypoint: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    nano_cpus: int = 0
    memory_bytes: int = 0
    pids_limit: int = DEFAULT_PIDS_LIMIT
    security_opt: tuple[str, ...] = SECURITY_OPT
    cap_drop: tuple[str, ...] = CAP_DROP

    def create_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "image": self.image,
            "labels": dict(self.labels),
            "environment": [f"{key}={value}" for key, value in self.environment.items()],
            "network_mode": self.network_mode,
            "mounts": [bind_mount(mount) for mount in self.mounts],
            "privileged": False,
            "security_opt": list(self.security_opt),
            "cap_drop": list(self.cap_drop),
            "pids_limit": self.pids_limit,
            "log_config": docker.types.LogConfig(type="json-file", config={}),
            "stdin_open": False,
            "tty": False,
        }
        if self.entrypoint:
            kwargs["entrypoint"] = list(self.entrypoint)
        if self.command:
            kwargs["command"] = list(self.command)
        if self.working_dir:
            kwargs["working_dir"] = self.working_dir
        if self.nano_cpus > 0:
            kwargs["nano_cpus"] = self.nano_cpus
        if self.memory_bytes > 0:
            kwargs["mem_limit"] = self.memory_bytes
            kwargs["memswap_limit"] = self.memory_bytes  # no swap beyond the limit
        return kwargs


def bind_mount(mount: Mount) -> docker.types.Mount:
    return docker.types.Mount(
        target=mount.target,
        source=str(mount.source.resolve()),
        type="bind",
        read_only=mount.read_only,
    )


def container_spec(
    request: RunRequest,
    params: DockerParams,
    *,
    full_network: str = "bridge",
    pids_limit: int = DEFAULT_PIDS_LIMIT,
) -> ContainerSpec:
    for mount in (*request.inputs, *request.outputs):
        if not mount.target.startswith("/"):
            raise ExecutionError(f"docker: mount target {mount.target!r} must be an absolute path")
    return ContainerSpec(
        image=params.image,
        labels={
            LABEL_MANAGED: "true",
            LABEL_EXECUTION: request.execution_id,
            LABEL_JOB: request.job_id,
        },
        environment=container_env(request, params),
        network_mode=network_mode(request.network, full_network),
        entrypoint=tuple(params.entrypoint),
        command=tuple(params.parameters),
        working_dir=params.working_directory,
        mounts=(*request.inputs, *request.outputs),
        nano_cpus=round(request.resources.cpu * 1e9),
        memory_bytes=request.resources.memory,
        pids_limit=pids_limit,
    )


def container_outcome(state: Mapping[str, Any], status_code: int, memory_bytes: int) -> RunOutcome:
    """How a container that ended by itself (not stopped by us) ended.

    Docker's ``OOMKilled`` flag is not reliable: when the task's exit is reported before the
    OOM event, the flag stays false (seen about one run in eight with dockerd 20.10 on cgroup
    v1). Nothing inside a container can SIGKILL its PID 1, so exit 137 under a memory limit is
    taken as the OOM killer's work, said as "most likely".
    """
    limit = f"limit {readable_bytes(memory_bytes)}" if memory_bytes > 0 else "no limit set"
    if state.get("OOMKilled"):
        return RunOutcome(
            exit_code=status_code or MEMORY_EXIT_CODE, error=f"out of memory ({limit})"
        )
    if status_code == MEMORY_EXIT_CODE and memory_bytes > 0:
        return RunOutcome(
            exit_code=status_code, error=f"killed (SIGKILL), most likely out of memory ({limit})"
        )
    return RunOutcome(exit_code=status_code)
