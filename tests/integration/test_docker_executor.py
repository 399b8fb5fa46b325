"""The ``docker`` executor against a real dockerd (one per session, see tests/conftest.py) and
its busybox image ``local/busybox:1``."""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest

from cli.stack import NodeOptions, NodeProcess
from compute.executors.base import Mount, RunOutcome, RunRequest
from compute.executors.docker import DockerExecutor
from compute.executors.docker_container import LABEL_EXECUTION, LABEL_MANAGED
from compute.executors.interrupts import CANCELLED_EXIT_CODE, TIMEOUT_EXIT_CODE
from compute.executors.registry import default_executors
from protocol.errors import ExecutionError, RetryableExecutionError
from protocol.job import EngineSpec, NetworkConfig, NetworkType
from protocol.resources import Resources
from tests.support.docker_engine import DockerEngine
from tests.support.identities import TOKEN
from tests.support.services import free_port
from tests.support.socket_proxy import UnixSocketProxy
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PROMPT_S = 10.0  # a killed container must be reported well within this
CAP_NET_RAW = 13
CAP_MKNOD = 27

Run = Callable[..., tuple[RunOutcome, RunRequest]]


@pytest.fixture(scope="module")
def engine_client(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    client = docker_engine.client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def executor(docker_engine: DockerEngine) -> Iterator[DockerExecutor]:
    executor = DockerExecutor(docker_engine.host, pull_timeout_s=20)
    yield executor
    executor.close()


def ours(client: docker.DockerClient, execution_id: str | None = None) -> list[Any]:
    """Containers labelled by the executor (all of them, or one execution's), any state.

    Sparse: as the list answered it. Without, the SDK inspects each listed container in turn,
    and one removed in between fails the whole listing with 404 (seen in CI)."""
    label = LABEL_MANAGED if execution_id is None else f"{LABEL_EXECUTION}={execution_id}"
    return list(client.containers.list(all=True, filters={"label": label}, sparse=True))


def docker_request(
    tmp_path: Path,
    params: dict[str, Any],
    *,
    execution_id: str = "e-1",
    inputs: Sequence[Mount] = (),
    outputs: Sequence[Mount] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = 20.0,
    resources: Resources | None = None,
    network: NetworkType = NetworkType.NONE,
    partition_index: int = 0,
    partition_count: int = 1,
) -> RunRequest:
    return RunRequest(
        job_id="j-1",
        execution_id=execution_id,
        engine=EngineSpec(type="docker", params=params),
        results_dir=tmp_path / "results" / execution_id,
        timeout_s=timeout_s,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        env=env or {},
        resources=resources or Resources(),
        network=NetworkConfig(type=network),
        partition_index=partition_index,
        partition_count=partition_count,
    )


@pytest.fixture
def run(
    executor: DockerExecutor,
    engine_client: docker.DockerClient,
    docker_engine: DockerEngine,
    tmp_path: Path,
) -> Run:
    """Run a shell script (or explicit params) in busybox; the container must be gone after."""

    def run_script(script: str | None = None, **options: Any) -> tuple[RunOutcome, RunRequest]:
        params = options.pop("params", None) or {
            "Image": docker_engine.image,
            "Entrypoint": ["sh", "-c"],
            "Parameters": [script],
        }
        request = docker_request(tmp_path, params, **options)
        outcome = executor.run(request)
        assert ours(engine_client) == []
        return outcome, request

    return run_script


def stdout(request: RunRequest) -> str:
    return (request.results_dir / "stdout").read_text()


def stderr(request: RunRequest) -> str:
    return (request.results_dir / "stderr").read_text()


def test_stdout_and_stderr_are_kept_apart(run: Run) -> None:
    outcome, request = run("echo out; echo err >&2; echo more out")

    assert outcome == RunOutcome(exit_code=0)
    assert stdout(request) == "out\nmore out\n"
    assert stderr(request) == "err\n"


def test_exit_code_of_the_task(run: Run) -> None:
    outcome, request = run("echo failing >&2; exit 3")

    assert outcome == RunOutcome(exit_code=3)
    assert stderr(request) == "failing\n"


def test_entrypoint_and_parameters(run: Run, docker_engine: DockerEngine) -> None:
    params = {"Image": docker_engine.image, "Entrypoint": ["echo"], "Parameters": ["a", "b c"]}
    outcome, request = run(params=params)
    assert (outcome, stdout(request)) == (RunOutcome(exit_code=0), "a b c\n")

    # Without an Entrypoint, Parameters are the whole command (the image has no entrypoint).
    params = {"Image": docker_engine.image, "Parameters": ["printf", "%s-", "x", "y"]}
    outcome, request = run(params=params, execution_id="e-2")
    assert (outcome, stdout(request)) == (RunOutcome(exit_code=0), "x-y-")


def test_env_and_working_directory(run: Run, docker_engine: DockerEngine) -> None:
    params = {
        "Image": docker_engine.image,
        "Entrypoint": ["sh", "-c"],
        "Parameters": [
            "pwd; echo $A $B; echo $BACALHAU_JOB_ID $BACALHAU_EXECUTION_ID "
            "$BACALHAU_PARTITION_INDEX $BACALHAU_PARTITION_COUNT"
        ],
        "EnvironmentVariables": ["B=from-engine", "A=engine-wins"],
        "WorkingDirectory": "/work/here",
    }
    outcome, request = run(
        params=params,
        env={"A": "from-task"},
        execution_id="e-env",
        partition_index=2,
        partition_count=3,
    )

    assert outcome == RunOutcome(exit_code=0)
    assert stdout(request).splitlines() == [
        "/work/here",
        "engine-wins from-engine",
        "j-1 e-env 2 3",
    ]


def test_inputs_are_visible_and_read_only(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "inputs" / "folder"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("in a folder\n")
    single = tmp_path / "inputs" / "one.txt"
    single.write_text("a single file\n")
    inputs = [Mount(source=folder, target="/inputs"), Mount(source=single, target="/data/one.txt")]

    outcome, request = run(
        "cat /inputs/a.txt /data/one.txt; touch /inputs/new || echo REFUSED; "
        "echo x >> /data/one.txt || echo REFUSED",
        inputs=inputs,
    )

    assert outcome == RunOutcome(exit_code=0)
    assert stdout(request) == "in a folder\na single file\nREFUSED\nREFUSED\n"
    assert "Read-only file system" in stderr(request)
    assert sorted(path.name for path in folder.iterdir()) == ["a.txt"]
    assert single.read_text() == "a single file\n"


def test_an_input_mounted_read_write_can_be_written(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "scratch"
    folder.mkdir()

    outcome, _ = run(
        "echo written > /scratch/new.txt",
        inputs=[Mount(source=folder, target="/scratch", read_only=False)],
    )

    assert outcome == RunOutcome(exit_code=0)
    assert (folder / "new.txt").read_text() == "written\n"


def test_outputs_are_collected_under_their_names(run: Run, tmp_path: Path) -> None:
    results = tmp_path / "results" / "e-1"
    outputs = []
    for name in ("outputs", "logs"):
        (results / name).mkdir(parents=True)
        outputs.append(Mount(source=results / name, target=f"/{name}", read_only=False))

    outcome, _ = run(
        "mkdir /outputs/sub && echo 42 > /outputs/sub/answer.txt && echo done > /logs/run.log",
        outputs=outputs,
    )

    assert outcome == RunOutcome(exit_code=0)
    assert (results / "outputs" / "sub" / "answer.txt").read_text() == "42\n"
    assert (results / "logs" / "run.log").read_text() == "done\n"


def test_large_output_arrives_whole(run: Run) -> None:
    outcome, request = run("seq 1 30000; seq 1 5000 >&2")

    assert outcome == RunOutcome(exit_code=0)
    assert stdout(request).splitlines() == [str(n) for n in range(1, 30001)]
    assert len(stderr(request).splitlines()) == 5000


def test_timeout_kills_the_container(run: Run) -> None:
    started = time.monotonic()
    outcome, request = run("echo started; sleep 30", timeout_s=1)

    assert outcome.exit_code == TIMEOUT_EXIT_CODE
    assert "timed out after 1s" in outcome.error
    assert time.monotonic() - started < PROMPT_S
    assert stdout(request) == "started\n"  # what it wrote before is kept


def test_memory_limit_ends_with_out_of_memory(run: Run) -> None:
    outcome, _ = run(
        "dd if=/dev/zero of=/dev/null bs=64M count=1", resources=Resources(memory=8 * MIB)
    )

    assert outcome.exit_code == 137
    assert "out of memory (limit 8Mi)" in outcome.error


def test_cpu_and_memory_limits_reach_the_cgroup(run: Run) -> None:
    outcome, request = run(
        "cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; true",
        resources=Resources(cpu=0.5, memory=64 * MIB),
    )

    assert outcome == RunOutcome(exit_code=0)
    values = stdout(request).split()
    assert "50000" in values  # 0.5 CPU: 50 ms per 100 ms period (cgroup v1 or v2)
    assert str(64 * MIB) in values


def test_no_privileges(run: Run) -> None:
    outcome, request = run("grep -E '^(NoNewPrivs|CapBnd)' /proc/self/status")

    assert outcome == RunOutcome(exit_code=0)
    status = dict(line.split(":\t") for line in stdout(request).splitlines())
    assert status["NoNewPrivs"] == "1"
    bounding = int(status["CapBnd"], 16)
    assert not bounding & (1 << CAP_NET_RAW)
    assert not bounding & (1 << CAP_MKNOD)


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP port on the host's loopback that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def test_network_none_has_only_loopback(run: Run, host_listener: int) -> None:
    outcome, request = run(
        f"ip -o link | cut -d: -f2; nc -w 2 127.0.0.1 {host_listener} -e true "
        "&& echo CONNECTED || echo NO-CONNECTION"
    )

    assert outcome == RunOutcome(exit_code=0)
    *links, connection = stdout(request).split()
    assert links == ["lo"]
    assert connection == "NO-CONNECTION"


def test_network_host_sees_the_host(run: Run, host_listener: int) -> None:
    outcome, request = run(
        f"ip -o link | cut -d: -f2; nc -w 2 127.0.0.1 {host_listener} -e true "
        "&& echo CONNECTED || echo NO-CONNECTION",
        network=NetworkType.HOST,
    )

    assert outcome == RunOutcome(exit_code=0)
    *links, connection = stdout(request).split()
    assert sorted(link.split("@")[0] for link in links) == sorted(os.listdir("/sys/class/net"))
    assert connection == "CONNECTED"


def test_network_http_is_refused(run: Run) -> None:
    with pytest.raises(ExecutionError, match="Network HTTP"):
        run("true", network=NetworkType.HTTP)


def test_cancel_stops_a_running_container(
    executor: DockerExecutor, engine_client: docker.DockerClient, run: Run
) -> None:
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run, "sleep 30", execution_id="e-cancel")
        wait_until(
            lambda: [c for c in ours(engine_client, "e-cancel") if c.status == "running"],
            PROMPT_S,
            message="the container running",
        )
        started = time.monotonic()
        executor.cancel("e-cancel")
        outcome, _ = future.result(timeout=PROMPT_S)

    assert outcome == RunOutcome(exit_code=CANCELLED_EXIT_CODE, error="cancelled")
    assert time.monotonic() - started < PROMPT_S
    assert executor.running() == []


def test_cancel_before_the_run_creates_no_container(executor: DockerExecutor, run: Run) -> None:
    executor.cancel("e-early")

    outcome, request = run("echo never", execution_id="e-early")

    assert outcome == RunOutcome(exit_code=CANCELLED_EXIT_CODE, error="cancelled")
    assert stdout(request) == ""


def test_a_missing_command_is_a_clear_error(run: Run, docker_engine: DockerEngine) -> None:
    with pytest.raises(ExecutionError, match="No command specified"):
        run(params={"Image": docker_engine.image})
    with pytest.raises(ExecutionError, match=r"cannot start .*/no/such/program"):
        run(params={"Image": docker_engine.image, "Entrypoint": ["/no/such/program"]})


def test_an_absent_image_is_pulled_and_fails_clearly(run: Run) -> None:
    image = f"127.0.0.1:{free_port()}/absent/image:1"  # a registry nobody listens on
    started = time.monotonic()

    with pytest.raises(ExecutionError, match=f"cannot pull image {image}"):
        run(params={"Image": image, "Parameters": ["true"]})
    assert time.monotonic() - started < PROMPT_S


def test_a_pull_from_a_silent_registry_gives_up_in_time(
    docker_engine: DockerEngine, engine_client: docker.DockerClient, tmp_path: Path
) -> None:
    executor = DockerExecutor(docker_engine.host, pull_timeout_s=1)
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        image = f"127.0.0.1:{silent.getsockname()[1]}/slow/image:1"
        request = docker_request(tmp_path, {"Image": image, "Parameters": ["true"]})
        started = time.monotonic()

        with pytest.raises(ExecutionError, match="no answer within 1s"):
            executor.run(request)

        assert time.monotonic() - started < 5
        assert executor.running() == []
    assert ours(engine_client) == []
    executor.close()


def run_and_cut(
    executor: DockerExecutor,
    request: RunRequest,
    proxy: UnixSocketProxy,
    client: docker.DockerClient,
) -> tuple[type[BaseException] | None, str]:
    """Start the run, cut the daemon's socket once its container runs; how the run ended
    (only the error's type and text leave this function, not its frames)."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(executor.run, request)
        wait_until(
            lambda: [c for c in ours(client, request.execution_id) if c.status == "running"],
            PROMPT_S,
            message="the container running",
        )
        proxy.cut()
        error = future.exception(timeout=PROMPT_S)
    return (None, "") if error is None else (type(error), str(error))


# docker-py does not close the sockets of connections that break (the wait cut short, the
# remove that cannot connect); the warnings are about the SDK. gc.collect() at the end makes
# them show here rather than in a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_daemon_that_vanishes_mid_run_is_retryable(
    docker_engine: DockerEngine, engine_client: docker.DockerClient, tmp_path: Path
) -> None:
    proxy = UnixSocketProxy(docker_engine.root / "proxy.sock", docker_engine.socket).start()
    executor = DockerExecutor(proxy.url, ping_cache_s=0)
    request = docker_request(
        tmp_path,
        {"Image": docker_engine.image, "Parameters": ["sleep", "30"]},
        execution_id="e-vanish",
    )
    try:
        assert executor.is_installed()

        error_type, message = run_and_cut(executor, request, proxy, engine_client)

        assert error_type is RetryableExecutionError
        assert "stopped answering while running e-vanish" in message
        assert not executor.is_installed()
        # The container outlived its executor's connection to the daemon; its label finds it.
        assert len(ours(engine_client, "e-vanish")) == 1
    finally:
        proxy.cut()
        for container in ours(engine_client, "e-vanish"):
            container.remove(force=True)
        executor.close()
        gc.collect()


def test_is_installed_only_while_the_daemon_answers(docker_engine: DockerEngine) -> None:
    assert DockerExecutor(docker_engine.host).is_installed()
    assert not DockerExecutor("unix:///nonexistent/docker.sock").is_installed()


def test_registry_offers_docker_only_with_a_daemon(docker_engine: DockerEngine) -> None:
    assert default_executors(docker_host=docker_engine.host).installed() == [
        "docker",
        "noop",
        "wasm",
    ]
    assert default_executors(docker_host="unix:///nonexistent/docker.sock").installed() == [
        "noop",
        "wasm",
    ]


@pytest.mark.parametrize("with_daemon", [True, False])
def test_compute_node_reports_docker_only_with_a_daemon(
    docker_engine: DockerEngine, tmp_path: Path, with_daemon: bool
) -> None:
    host = docker_engine.host if with_daemon else f"unix://{tmp_path}/no-daemon.sock"
    node = NodeProcess(
        NodeOptions(
            name="compute",
            data_dir=tmp_path,
            requester=False,
            compute=True,
            docker_host=host,
            local_publisher_port=0,
            cluster_token=TOKEN,
        )
    )
    node.start()
    try:
        compute_info = node.info().compute_node_info
        assert compute_info is not None
        engines = compute_info.execution_engines
    finally:
        node.stop()

    assert ("docker" in engines) is with_daemon
    assert {"noop", "wasm"} <= set(engines)


def test_runs_in_parallel_stay_apart(
    executor: DockerExecutor,
    engine_client: docker.DockerClient,
    docker_engine: DockerEngine,
    tmp_path: Path,
) -> None:
    barrier = threading.Barrier(3)

    def one(index: int) -> tuple[RunOutcome, RunRequest]:
        params = {"Image": docker_engine.image, "Entrypoint": ["sh", "-c"]}
        params["Parameters"] = [f"echo {index}; exit {index}"]
        request = docker_request(tmp_path, params, execution_id=f"e-par-{index}")
        barrier.wait(timeout=PROMPT_S)
        return executor.run(request), request

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))

    assert [(outcome.exit_code, stdout(request)) for outcome, request in results] == [
        (0, "0\n"),
        (1, "1\n"),
        (2, "2\n"),
    ]
    assert ours(engine_client) == []
