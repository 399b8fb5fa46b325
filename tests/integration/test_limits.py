"""Hostile sizes through a real stack (API, SQLite, wasmtime): refused at submission with a
400 naming the field, nothing stored; what the limits allow runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.devstack import Devstack, embedded
from cli.main import create_app
from tests.support.jobs import HELLO_WAT, wasm_job
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
JOBS = "/api/v1/orchestrator/jobs"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    with embedded(compute_nodes=1, data_dir=tmp_path_factory.mktemp("limits")) as running:
        yield running


@pytest.fixture
def api(stack: Devstack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}", timeout=30) as client:
        yield client


def job_ids(api: httpx.Client) -> list[str]:
    return [job["ID"] for job in api.get(JOBS, params={"limit": 1000}).json()["Items"]]


@pytest.mark.parametrize(
    ("job", "field"),
    [
        (
            wasm_job(Timeouts={"ExecutionTimeout": 4_000_000_000}),
            "Job.Tasks[0].Timeouts.ExecutionTimeout",
        ),
        (wasm_job(count=1_000_000), "Job.Count"),
        (wasm_job(ResultPaths=[{"Name": "r" * 300, "Path": "/out"}]), "ResultPaths[0].Name"),
    ],
)
def test_a_hostile_job_is_a_400_and_stores_nothing(
    api: httpx.Client, job: dict[str, Any], field: str
) -> None:
    before = job_ids(api)
    response = api.put(JOBS, json={"Job": job})
    assert response.status_code == 400, response.text
    assert field in response.json()["Field"]
    assert job_ids(api) == before


def test_the_longest_result_name_runs_and_is_published(api: httpx.Client) -> None:
    name = "r" * 255
    job = wasm_job(args=["Limits"], ResultPaths=[{"Name": name, "Path": "/outputs"}])
    response = api.put(JOBS, json={"Job": job})
    assert response.status_code == 200, response.text
    job_id = response.json()["JobID"]

    def ended() -> dict[str, Any] | None:
        state = api.get(f"{JOBS}/{job_id}").json()["Job"]["State"]
        return state if state["StateType"] in ("Completed", "Failed") else None

    state = wait_until(ended, 60, 0.05, f"job {job_id} to end")
    assert state["StateType"] == "Completed", state


def test_the_cli_says_which_limit_in_one_line(stack: Devstack, tmp_path: Path) -> None:
    args = ["--api-port", str(stack.api_port), "wasm", "run", str(HELLO_WAT), "x"]
    result = CliRunner().invoke(
        create_app(poll_interval_s=0.05), [*args, "--timeout", "4000000000"]
    )
    assert result.exit_code == 1, result.output
    assert "ExecutionTimeout" in result.output
    assert "--max-execution-timeout" in result.output
    assert "Traceback" not in result.output
