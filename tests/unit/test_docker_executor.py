"""The ``docker`` executor's container spec and outcomes (pure), and its behaviour when no
daemon answers. The real engine is in tests/integration/test_docker_executor.py."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compute.executors.base import Mount, RunOutcome, RunRequest
from compute.executors.docker import DockerExecutor
from compute.executors.docker_container import (
    CAP_DROP,
    LABEL_EXECUTION,
    LABEL_JOB,
    LABEL_MANAGED,
    container_outcome,
    container_spec,
    docker_params,
    network_mode,
)
from compute.executors.docker_daemon import unix_socket_path
from compute.executors.registry import default_executors
from protocol.errors import ExecutionError, RetryableExecutionError
from protocol.job import EngineSpec, NetworkConfig, NetworkType
from protocol.resources import Resources
from protocol.wire import STORED

MIB = 1024 * 1024


def request(tmp_path: Path, params: dict[str, Any], **fields: Any) -> RunRequest:
    return RunRequest(
        job_id="j-1",
        execution_id="e-1",
        engine=EngineSpec(type="docker", params=params),
        results_dir=tmp_path / "results",
        timeout_s=30,
        **fields,
    )


def spec_kwargs(tmp_path: Path, params: dict[str, Any], **fields: Any) -> dict[str, Any]:
    run = request(tmp_path, params, **fields)
    return container_spec(run, docker_params(run.engine)).create_kwargs()


def test_container_spec_carries_the_job(tmp_path: Path) -> None:
    kwargs = spec_kwargs(
        tmp_path,
        {
            "Image": "ubuntu:24.04",
            "Entrypoint": ["python3", "-c"],
            "Parameters": ["print(1)"],
            "EnvironmentVariables": {"B": "engine", "A": "engine"},
            "WorkingDirectory": "/work",
        },
        inputs=(Mount(source=tmp_path / "in", target="/inputs"),),
        outputs=(Mount(source=tmp_path / "out", target="/outputs", read_only=False),),
        env={"A": "task", "C": "task"},
        resources=Resources(cpu=1.5, memory=256 * MIB),
        partition_index=1,
        partition_count=4,
        node_id="n-1",
    )

    assert kwargs["image"] == "ubuntu:24.04"
    assert kwargs["entrypoint"] == ["python3", "-c"]
    assert kwargs["command"] == ["print(1)"]
    assert kwargs["working_dir"] == "/work"
    assert kwargs["environment"] == [
        "A=engine",
        "C=task",
        "B=engine",
        "BACALHAU_JOB_ID=j-1",
        "BACALHAU_EXECUTION_ID=e-1",
        "BACALHAU_NODE_ID=n-1",
        "BACALHAU_PARTITION_INDEX=1",
        "BACALHAU_PARTITION_COUNT=4",
    ]
    assert [(m["Source"], m["Target"], m["Type"], m["ReadOnly"]) for m in kwargs["mounts"]] == [
        (str(tmp_path / "in"), "/inputs", "bind", True),
        (str(tmp_path / "out"), "/outputs", "bind", False),
    ]
    assert kwargs["nano_cpus"] == 1_500_000_000
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 256 * MIB
    assert kwargs["labels"] == {LABEL_MANAGED: "true", LABEL_EXECUTION: "e-1", LABEL_JOB: "j-1"}
    assert kwargs["network_mode"] == "none"


def test_container_spec_is_locked_down(tmp_path: Path) -> None:
    kwargs = spec_kwargs(tmp_path, {"Image": "busybox"})

    assert kwargs["privileged"] is False
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["cap_drop"] == list(CAP_DROP)
    assert kwargs["pids_limit"] > 0
    assert kwargs["log_config"]["Type"] == "json-file"


def test_container_spec_leaves_unset_fields_to_the_image(tmp_path: Path) -> None:
    kwargs = spec_kwargs(tmp_path, {"Image": "busybox"})

    for key in ("entrypoint", "command", "working_dir", "nano_cpus", "mem_limit"):
        assert key not in kwargs


@pytest.mark.parametrize(
    ("network", "mode"),
    [(NetworkType.NONE, "none"), (NetworkType.HOST, "host"), (NetworkType.FULL, "bridge")],
)
def test_network_modes(network: NetworkType, mode: str) -> None:
    assert network_mode(NetworkConfig(type=network)) == mode


def test_network_full_can_use_another_network() -> None:
    assert network_mode(NetworkConfig(type=NetworkType.FULL), full_network="jobs") == "jobs"


def test_network_http_is_refused_not_widened() -> None:
    with pytest.raises(ExecutionError, match=r"Network HTTP .* not supported"):
        network_mode(NetworkConfig(type=NetworkType.HTTP))


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({}, "Engine.Params.Image: Field required"),
        ({"Image": " "}, "Engine.Params.Image: must name an image"),
        ({"Image": "x", "WorkingDirectory": "rel"}, "Engine.Params.WorkingDirectory"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, Any], problem: str) -> None:
    with pytest.raises(ExecutionError, match=problem):
        docker_params(
            EngineSpec.model_validate({"Type": "docker", "Params": params}, context=STORED)
        )


def test_a_relative_mount_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match="'inputs' must be an absolute path"):
        spec_kwargs(tmp_path, {"Image": "x"}, inputs=(Mount(source=tmp_path, target="inputs"),))


def test_outcomes() -> None:
    assert container_outcome({"OOMKilled": False}, 0, 0) == RunOutcome(exit_code=0)
    assert container_outcome({"OOMKilled": False}, 3, 8 * MIB) == RunOutcome(exit_code=3)
    assert container_outcome({"OOMKilled": True}, 137, 8 * MIB) == RunOutcome(
        exit_code=137, error="out of memory (limit 8Mi)"
    )
    assert container_outcome({"OOMKilled": True}, 0, 10_000_000) == RunOutcome(
        exit_code=137, error="out of memory (limit 10000000 bytes)"
    )
    # Docker sometimes loses the flag; a SIGKILLed task under a limit is still explained.
    assert container_outcome({"OOMKilled": False}, 137, 8 * MIB) == RunOutcome(
        exit_code=137, error="killed (SIGKILL), most likely out of memory (limit 8Mi)"
    )
    assert container_outcome({"OOMKilled": False}, 137, 0) == RunOutcome(exit_code=137)


def test_unix_socket_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert unix_socket_path(None) == "/var/run/docker.sock"
    assert unix_socket_path("unix:///tmp/d.sock") == "/tmp/d.sock"
    assert unix_socket_path("tcp://127.0.0.1:2375") is None
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert unix_socket_path(None) == "/run/user/1000/docker.sock"


NO_DOCKER = "unix:///nonexistent/docker.sock"


def test_no_daemon_means_not_installed() -> None:
    assert not DockerExecutor(NO_DOCKER).is_installed()
    assert default_executors(docker_host=NO_DOCKER).installed() == ["noop", "wasm"]


def test_docker_host_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)

    assert not DockerExecutor().is_installed()


@pytest.fixture
def silent_socket(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and never answers."""
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(8)
        yield f"unix://{path}"


def test_a_silent_daemon_is_not_installed_and_the_answer_is_cached(silent_socket: str) -> None:
    executor = DockerExecutor(silent_socket, ping_timeout_s=0.3, ping_cache_s=60)

    started = time.monotonic()
    assert not executor.is_installed()
    first_s = time.monotonic() - started
    started = time.monotonic()
    assert not executor.is_installed()

    assert first_s < 3
    assert time.monotonic() - started < 0.05


def test_running_without_a_daemon_is_retryable(tmp_path: Path) -> None:
    executor = DockerExecutor(NO_DOCKER)

    with pytest.raises(RetryableExecutionError, match=r"nonexistent/docker\.sock"):
        executor.run(request(tmp_path, {"Image": "busybox", "Parameters": ["true"]}))
    assert executor.running() == []
