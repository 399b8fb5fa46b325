"""A container's output, followed while it runs: the docker executor copies stdout and stderr
into the results folder as the container writes them, and ``job logs --follow`` streams them
through the requester (against the session's private dockerd and its busybox image)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.devstack import Devstack
from cli.stack import NodeOptions
from compute.executors.base import Mount, RunOutcome, RunRequest
from compute.executors.docker import DockerExecutor
from protocol.job import EngineSpec
from tests.support.docker_engine import DockerEngine
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GATED = "echo before; echo waiting >&2; while [ ! -e /inputs/go ]; do sleep 0.05; done; echo after"


def test_the_output_files_grow_while_the_container_runs(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    params = {"Image": docker_engine.image, "Entrypoint": ["sh", "-c"], "Parameters": [GATED]}
    request = RunRequest(
        job_id="j-1",
        execution_id="e-live",
        engine=EngineSpec(type="docker", params=params),
        results_dir=tmp_path / "results",
        timeout_s=60,
        inputs=(Mount(source=gate, target="/inputs"),),
    )
    executor = DockerExecutor(docker_engine.host, pull_timeout_s=20)
    outcomes: list[RunOutcome] = []
    runner = threading.Thread(target=lambda: outcomes.append(executor.run(request)))
    runner.start()
    try:
        stdout = request.results_dir / "stdout"
        stderr = request.results_dir / "stderr"
        wait_until(lambda: stdout.exists() and stdout.read_text() == "before\n", 60, 0.05)
        # each stream is copied by a thread of its own: stderr's may come a moment later
        wait_until(lambda: stderr.exists() and stderr.read_text() == "waiting\n", 60, 0.05)
        assert not outcomes  # still running
    finally:
        (gate / "go").touch()
        runner.join(60)
        executor.close()
    assert outcomes[0].exit_code == 0, outcomes[0]
    assert stdout.read_text() == "before\nafter\n"


def test_job_logs_follow_streams_a_running_container(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path,
        api_port=0,
        heartbeat_interval_s=0.2,
        allowed_local_paths=(str(gate),),
        docker_host=docker_engine.host,
    )
    job: dict[str, Any] = {
        "Type": "batch",
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": docker_engine.image,
                        "Entrypoint": ["sh", "-c"],
                        "Parameters": [GATED],
                    },
                },
                "InputSources": [
                    {
                        "Source": {"Type": "localDirectory", "Params": {"SourcePath": str(gate)}},
                        "Target": "/inputs",
                    }
                ],
                "Publisher": {"Type": "local"},
            }
        ],
    }
    with Devstack(options, compute_nodes=1) as stack:
        base = f"http://127.0.0.1:{stack.api_port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            job_id = client.put("/api/v1/orchestrator/jobs", json={"Job": job}).json()["JobID"]
            lines: list[str] = []
            logs = f"/api/v1/orchestrator/jobs/{job_id}/logs"
            with client.stream("GET", logs, params={"follow": "true"}) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    lines.append(line)
                    if '"Line":"before\\n"' in line:
                        state = client.get(f"/api/v1/orchestrator/jobs/{job_id}").json()
                        assert state["Job"]["State"]["StateType"] == "Running"
                        (gate / "go").touch()
    shown = "".join(lines)
    assert '"Line":"before\\n"' in shown
    assert '"Line":"after\\n"' in shown
    assert '"Line":"waiting\\n"' in shown
    assert lines[-1].startswith('{"End":true')
