"""``bacalao job logs --follow`` and ``run --follow`` on a real cluster, over every transport:
a program's output reaches the CLI through the requester while the program still runs (it
waits for a file the test makes), and a program that floods stdout never fills a buffer past
its bound."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.devstack import Devstack
from cli.main import create_app
from cli.stack import NodeOptions
from requester.log_session import FULL
from tests.support.brokers import peer_broker
from tests.support.jobs import ROOT, wasm_job
from tests.support.rabbitmq import RabbitMQServer
from tests.support.services import RedisServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GATE_WAT = ROOT / "tests" / "fixtures" / "wasm" / "gate.wat"
FLOOD_WAT = ROOT / "tests" / "fixtures" / "wasm" / "flood.wat"
TRANSPORTS = ["memory", "redis", "amqp", "peer"]


@dataclasses.dataclass
class Cluster:
    stack: Devstack
    gate: Path  # the folder the gated program waits in, for a file named "go"

    @property
    def env(self) -> dict[str, str]:
        api = {"BACALAO_API_HOST": "127.0.0.1", "BACALAO_API_PORT": str(self.stack.api_port)}
        return {**os.environ, **api, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.stack.api_port}", timeout=30)

    def submit(self, job: dict[str, Any]) -> str:
        with self.api() as client:
            response = client.put("/api/v1/orchestrator/jobs", json={"Job": job})
            assert response.status_code == 200, response.text
            return str(response.json()["JobID"])

    def state(self, job_id: str) -> str:
        with self.api() as client:
            job = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()["Job"]
            return str(job["State"]["StateType"])

    def gated_job(self) -> dict[str, Any]:
        job = wasm_job(GATE_WAT)
        source = {"Type": "localDirectory", "Params": {"SourcePath": str(self.gate)}}
        job["Tasks"][0]["InputSources"].append({"Source": source, "Target": "/inputs"})
        return job


def start_cluster(root: Path, broker: str, compute_broker: str) -> Cluster:
    gate = root / "gate"
    gate.mkdir()
    options = NodeOptions(
        name="requester",
        data_dir=root,
        broker=broker,
        api_port=0,
        heartbeat_interval_s=0.2,
        allowed_local_paths=(str(gate),),
    )
    stack = Devstack(options, compute_nodes=1, compute_overrides=[{"broker": compute_broker}])
    stack.start()
    return Cluster(stack, gate)


@pytest.fixture(params=TRANSPORTS)
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    if request.param == "memory":
        urls = ("memory://", "memory://")
    elif request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis")
        urls = (redis.url, redis.url)
    elif request.param == "amqp":
        rabbitmq: RabbitMQServer = request.getfixturevalue("rabbitmq")
        urls = (rabbitmq.url, rabbitmq.url)
    else:
        peers = peer_broker()
        urls = (peers.url_for(0), peers.url_for(1))
    running = start_cluster(tmp_path, *urls)
    try:
        yield running
    finally:
        running.stack.stop()


@pytest.fixture
def memory_cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = start_cluster(tmp_path, "memory://", "memory://")
    try:
        yield running
    finally:
        running.stack.stop()


class Command:
    """``bacalao ARGS`` as a separate process, its output read line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from cli.main import main; main()", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe: Any, lines: list[str]) -> None:
        for line in iter(pipe.readline, b""):
            lines.append(line.decode())

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.stdout))

    def wait(self, timeout_s: float = 60) -> int:
        try:
            code = self.process.wait(timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for reader in self._readers:
                reader.join(5)
            for pipe in (self.process.stdout, self.process.stderr):
                if pipe is not None:
                    pipe.close()
        return code


def test_job_logs_follow_shows_output_while_the_program_runs(cluster: Cluster) -> None:
    job_id = cluster.submit(cluster.gated_job())
    follower = Command(cluster.env, "job", "logs", "--follow", job_id)
    try:
        wait_until(lambda: follower.saw("before"), 60, message="the first line to be followed")
        assert cluster.state(job_id) == "Running"  # shown while the program runs
        assert follower.process.poll() is None  # and the follow goes on
        (cluster.gate / "go").touch()
        code = follower.wait()
    finally:
        if follower.process.poll() is None:
            follower.process.kill()
    assert code == 0, "".join(follower.stderr)
    assert "".join(follower.stdout) == "before\nafter\n"
    assert "".join(follower.stderr) == "waiting\n"
    wait_until(lambda: cluster.state(job_id) == "Completed", 30, message="the job to complete")


def test_wasm_run_follow_prints_the_output_as_it_comes_and_once(memory_cluster: Cluster) -> None:
    cluster = memory_cluster
    args = ["wasm", "run", "--follow", "-i", f"{cluster.gate}:/inputs", str(GATE_WAT)]
    run = Command(cluster.env, *args)
    try:
        wait_until(lambda: run.saw("before"), 60, message="the first line of the run")
        assert run.process.poll() is None
        (cluster.gate / "go").touch()
        code = run.wait()
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert code == 0, "".join(run.stderr)
    assert "".join(run.stdout) == "before\nafter\n"  # not printed a second time at the end
    assert "waiting\n" in run.stderr


def test_job_logs_without_follow_prints_the_final_output_as_before(
    memory_cluster: Cluster,
) -> None:
    cluster = memory_cluster
    (cluster.gate / "go").touch()
    job_id = cluster.submit(cluster.gated_job())
    wait_until(lambda: cluster.state(job_id) == "Completed", 30, message="the job to complete")
    runner = CliRunner()
    env = {"BACALAO_API_HOST": "127.0.0.1", "BACALAO_API_PORT": str(cluster.stack.api_port)}
    shown = runner.invoke(create_app(), ["job", "logs", job_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert (shown.stdout, shown.stderr) == ("before\nafter\n", "waiting\n")
    tailed = runner.invoke(create_app(), ["job", "logs", "--tail", "1", job_id], env=env)
    assert tailed.exit_code == 0, tailed.output
    assert tailed.stdout == "after\n"
    followed = runner.invoke(create_app(), ["job", "logs", "-f", job_id], env=env)
    assert followed.exit_code == 0, followed.output  # ended already: its stored output
    assert (followed.stdout, followed.stderr) == ("before\nafter\n", "waiting\n")


def test_a_flood_of_output_never_fills_the_buffer_past_its_bound(
    memory_cluster: Cluster,
) -> None:
    cluster = memory_cluster
    requester = cluster.stack.requester.orchestrator
    compute = cluster.stack.computes[0].compute
    assert requester is not None
    assert compute is not None
    job_id = cluster.submit(wasm_job(FLOOD_WAT, Timeouts={"ExecutionTimeout": 60}))
    limit = 200 * 1024
    session = requester.logs.open(job_id, buffer_bytes=limit)
    try:
        received = 0
        for _ in range(3):  # the buffer fills, and stops asking; the follower takes; again
            wait_until(lambda: session.state == FULL, 30, message="the buffer to fill")
            assert session.buffer.used_bytes <= limit
            assert compute.logs.pending() == 0  # nobody asks: the node sends nothing
            events, _ = session.take()
            received += sum(len(event.text) for event in events)
        assert received > 2 * limit  # it did flood, and all of it came through the buffer
        assert session.buffer.peak_bytes <= limit
        assert session.offsets["stdout"] == received  # nothing lost or repeated
    finally:
        session.close()
    with cluster.api() as client:
        client.delete(f"/api/v1/orchestrator/jobs/{job_id}")
