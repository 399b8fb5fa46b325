"""``docker`` executor: runs the task in a container of a Docker daemon on this host.

* Daemon: ``base_url`` (``unix://``, ``tcp://``...), else ``DOCKER_HOST``, else the local
  socket. The executor is installed while the daemon answers a ping (cached briefly). Inputs
  and outputs are bind mounts, so the daemon must see this host's files.
* Image: used when present, pulled when not, for at most ``pull_timeout_s``; an image that
  cannot be had raises :class:`ExecutionError` naming it.
* Container: see :mod:`compute.executors.docker_container` (mounts, limits, network,
  privileges, env, labels ``bacalao.execution-id`` / ``bacalao.job-id`` for finding
  leftovers). stdout and stderr are copied apart into the results folder while it runs
  (:mod:`compute.executors.docker_logs`), so a running container's output can be followed.
* Outcomes: the container's exit code; the OOM killer -> ``"out of memory (limit X)"``;
  timeout and cancel kill the container and end like every engine's
  (:mod:`compute.executors.interrupts`). The container is removed whatever happened; a daemon
  that stops answering raises :class:`RetryableExecutionError`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import docker.errors
from docker.models.containers import Container

from compute.executors.base import RunOutcome, RunRequest
from compute.executors.docker_container import (
    DEFAULT_PIDS_LIMIT,
    ContainerSpec,
    container_outcome,
    container_spec,
    docker_params,
)
from compute.executors.docker_daemon import DockerDaemon, daemon_calls
from compute.executors.docker_images import api_problem, ensure_image
from compute.executors.docker_logs import LiveLogs
from compute.executors.interrupts import RunControl, RunControls
from protocol.errors import ExecutionError, RetryableExecutionError
from protocol.job import EngineSpec, InputSource

log = logging.getLogger(__name__)

__all__ = ["DockerExecutor"]

STOP_GRACE_S = 30.0  # how long past its deadline a killed container may take to be reported


class DockerExecutor:
    """Runs containers on one daemon; safe to call from several threads at once."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        pull_timeout_s: float = 300.0,
        ping_timeout_s: float = 2.0,
        ping_cache_s: float = 5.0,
        full_network: str = "bridge",
        pids_limit: int = DEFAULT_PIDS_LIMIT,
    ) -> None:
        self.daemon = DockerDaemon(
            base_url, ping_timeout_s=ping_timeout_s, ping_cache_s=ping_cache_s
        )
        self.pull_timeout_s = pull_timeout_s
        self.full_network = full_network
        self.pids_limit = pids_limit
        self._controls = RunControls()

    @property
    def type(self) -> str:
        return "docker"

    def is_installed(self) -> bool:
        return self.daemon.answers()

    def extra_inputs(self, engine: EngineSpec) -> list[InputSource]:
        return []

    def running(self) -> list[str]:
        """Execution IDs running now, sorted."""
        return self._controls.running()

    def cancel(self, execution_id: str) -> None:
        self._controls.cancel(execution_id)

    def close(self) -> None:
        self.daemon.close()

    def run(self, request: RunRequest) -> RunOutcome:
        params = docker_params(request.engine)
        spec = container_spec(
            request, params, full_network=self.full_network, pids_limit=self.pids_limit
        )
        request.results_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self._controls.track(request.execution_id, request.timeout_s) as control:
            if control.reason is None:
                ensure_image(self.daemon, spec.image, self.pull_timeout_s, control)
            if control.reason is not None:
                for name in ("stdout", "stderr"):
                    (request.results_dir / name).touch()
                return control.outcome()
            log.info(
                "event=docker_run_start execution=%s image=%s network=%s cpu=%g "
                "memory_bytes=%d timeout_s=%g",
                request.execution_id,
                spec.image,
                spec.network_mode,
                request.resources.cpu,
                spec.memory_bytes,
                request.timeout_s,
            )
            outcome = self._run_container(request, spec, control)
        log.info(
            "event=docker_run_end execution=%s exit_code=%d error=%r duration_s=%.3f",
            request.execution_id,
            outcome.exit_code,
            outcome.error,
            time.monotonic() - started,
        )
        return outcome

    def _run_container(
        self, request: RunRequest, spec: ContainerSpec, control: RunControl
    ) -> RunOutcome:
        client = self.daemon.client()
        with daemon_calls(self.daemon, f"creating the container of {request.execution_id}"):
            container = create_container(client, spec)
        logs = LiveLogs(container, request.results_dir)
        try:
            with daemon_calls(self.daemon, f"starting the container of {request.execution_id}"):
                start_container(container, spec.image)
            logs.start()
            control.on_stop(lambda: self._kill(container, request.execution_id))
            with daemon_calls(self.daemon, f"running {request.execution_id}"):
                status_code = wait_for_exit(container, request.timeout_s)
                stopped = control.reason is not None  # a deadline passing from here on is moot
                container.reload()
                logs.finish()
            if stopped:
                return control.outcome()
            return container_outcome(container.attrs["State"], status_code, spec.memory_bytes)
        finally:
            logs.close()
            self._remove(container, request.execution_id)

    def _kill(self, container: Container, execution_id: str) -> None:
        """The stop switch's hook: SIGKILL now (a stopped job gets no grace period)."""
        try:
            container.kill()
        except docker.errors.APIError as exc:  # already ended, or already gone
            log.debug("event=docker_kill_skipped execution=%s error=%r", execution_id, str(exc))
        except OSError as exc:
            log.warning(
                "event=docker_kill_failed execution=%s host=%s error=%r",
                execution_id,
                self.daemon.where,
                str(exc),
            )

    def _remove(self, container: Container, execution_id: str) -> None:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, OSError) as exc:
            log.warning(
                "event=docker_remove_failed execution=%s container=%s host=%s error=%r",
                execution_id,
                container.id,
                self.daemon.where,
                str(exc),
            )


def create_container(client: docker.DockerClient, spec: ContainerSpec) -> Container:
    try:
        return client.containers.create(**spec.create_kwargs())
    except docker.errors.APIError as exc:
        raise ExecutionError(
            f"cannot create a container of image {spec.image}: {api_problem(exc)}"
        ) from None


def start_container(container: Container, image: str) -> None:
    try:
        container.start()
    except docker.errors.APIError as exc:
        raise ExecutionError(
            f"cannot start the container of image {image}: {api_problem(exc)}"
        ) from None


def wait_for_exit(container: Container, timeout_s: float) -> int:
    """The exit status; the stop switch kills the container at the deadline, so waiting
    longer than the deadline and a grace period means the daemon is in trouble."""
    wait_s = timeout_s + STOP_GRACE_S if timeout_s > 0 else None
    result: dict[str, Any] = container.wait(timeout=wait_s)
    error = result.get("Error")
    if error:
        raise RetryableExecutionError(f"docker could not follow the container: {error}")
    return int(result["StatusCode"])
