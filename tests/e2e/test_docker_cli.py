"""The issue's example, as a user types it, through a devstack with a real Docker engine:

    bacalao docker run -i file:///data/logs:/input -o apples:/output_folder \\
        local/busybox:1 -- sh -c 'ls /input > /output_folder/file.txt'
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.devstack import Devstack
from cli.main import create_app
from cli.stack import NodeOptions
from tests.support.docker_engine import DockerEngine

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_the_readme_docker_example_runs_end_to_end(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    for name in ("app.log", "db.log"):
        (logs / name).write_text(f"{name}\n")
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path / "stack",
        api_port=0,
        heartbeat_interval_s=0.5,
        allowed_local_paths=(str(logs),),
        docker_host=docker_engine.host,
        local_publisher_port=0,
    )
    stack = Devstack(options, 1)
    stack.start()
    try:
        app = create_app()
        api = ["--api-port", str(stack.api_port)]
        run = CliRunner().invoke(
            app,
            [
                "docker",
                "run",
                *api,
                "--id-only",
                "-i",
                f"file://{logs}:/input",
                "-o",
                "apples:/output_folder",
                docker_engine.image,
                "--",
                "sh",
                "-c",
                "ls /input > /output_folder/file.txt",
            ],
        )
        assert run.exit_code == 0, run.output
        job_id = run.output.strip().splitlines()[-1]
        describe = CliRunner().invoke(app, ["job", "describe", job_id, *api, "--output", "json"])
        assert describe.exit_code == 0, describe.output
        out = tmp_path / "out"
        get = CliRunner().invoke(app, ["job", "get", job_id, "--output-dir", str(out), *api])
        assert get.exit_code == 0, get.output
        assert (out / "apples" / "file.txt").read_text().split() == ["app.log", "db.log"]
        assert (out / "exitCode").read_text().strip() == "0"
    finally:
        stack.stop()
