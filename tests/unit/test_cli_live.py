"""The ``bacalao`` app against a real requester: a devstack in this process (memory bus,
SQLite, local publisher, wasmtime) with its API on a free loopback port, reached through the
BACALAO_API_HOST/BACALAO_API_PORT environment as a user's shell would."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli.devstack import Devstack
from cli.main import create_app
from cli.stack import NodeOptions
from requester.store import ORDER_COLUMNS
from tests.support.jobs import HELLO_WAT, noop_job, run_job

pytestmark = pytest.mark.timeout(90)
ODD_MEMORY_BYTES = 20_221_201_612  # no whole number of Gi, Mi or Ki: shown rounded, 18.8Gi
_HEADER = re.compile(r"^== execution (e-[0-9a-f-]+) on (n-[0-9a-f-]+) ==$", re.MULTILINE)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path_factory.mktemp("live"),
        api_port=0,
        heartbeat_interval_s=0.2,
        limit_memory=ODD_MEMORY_BYTES,
    )
    with Devstack(options, compute_nodes=2) as devstack:
        yield devstack


@pytest.fixture(scope="module")
def env(stack: Devstack) -> dict[str, str]:
    return {"BACALAO_API_HOST": "127.0.0.1", "BACALAO_API_PORT": str(stack.api_port)}


def bacalao(env: Mapping[str, str], *args: str, stdin: str | None = None) -> Result:
    app = create_app(poll_interval_s=0.05)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env}, input=stdin)


def test_the_environment_chooses_the_requester(stack: Devstack, env: dict[str, str]) -> None:
    listed = bacalao(env, "node", "list", "--output", "json")
    assert listed.exit_code == 0, listed.output
    ids = {node["Info"]["NodeID"] for node in json.loads(listed.stdout)}
    assert ids == {stack.requester.node_id, *(node.node_id for node in stack.computes)}

    as_url = {"BACALAO_API_HOST": f"http://127.0.0.1:{stack.api_port}", "BACALAO_API_PORT": "1"}
    assert bacalao(as_url, "node", "list").exit_code == 0  # a URL carries its own port


def test_count_2_prints_every_run_each_after_a_header_on_stderr(
    stack: Devstack, env: dict[str, str]
) -> None:
    result = bacalao(env, "wasm", "run", "--count", "2", str(HELLO_WAT), "Ada")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello, Ada!\n" * 2
    headers = _HEADER.findall(result.stderr)
    assert len(headers) == 2, result.stderr
    assert {node for _, node in headers} <= {node.node_id for node in stack.computes}
    assert len({execution for execution, _ in headers}) == 2

    single = bacalao(env, "wasm", "run", str(HELLO_WAT), "Ada")
    assert single.exit_code == 0, single.output
    assert single.stdout == "Hello, Ada!\n"
    assert "== execution" not in single.stderr


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("file_arg", [[], ["-"]])
def test_describe_output_runs_again_as_a_new_job(
    env: dict[str, str], fmt: str, file_arg: list[str]
) -> None:
    first = bacalao(env, "wasm", "run", "--id-only", "-l", "round=1", str(HELLO_WAT), "again")
    assert first.exit_code == 0, first.output
    old_id = first.stdout.strip()
    described = bacalao(env, "job", "describe", old_id, "--output", fmt)
    assert described.exit_code == 0, described.output

    rerun = bacalao(env, "job", "run", *file_arg, stdin=described.stdout)

    assert rerun.exit_code == 0, rerun.output
    assert rerun.stdout == "Hello, again!\n"
    listed = json.loads(bacalao(env, "job", "list", "--output", "json", "--limit", "100").stdout)
    reruns = [job for job in listed if job["Labels"] == {"round": "1"} and job["ID"] != old_id]
    assert reruns, "the described job was not submitted again"
    newest = max(reruns, key=lambda job: job["CreateTime"])
    assert newest["Name"] == newest["ID"]  # a name of its own, not the old ID


def test_job_list_is_newest_first_and_reversed_on_request(
    stack: Devstack, env: dict[str, str]
) -> None:
    submitted = [run_job(stack.api_port, noop_job())["ID"] for _ in range(3)]
    listed = bacalao(env, "job", "list", "--output", "json", "--limit", "2")
    newest = [job["ID"] for job in json.loads(listed.stdout)]
    assert newest == [submitted[2], submitted[1]]  # the latest two, the latest first
    listed = bacalao(env, "job", "list", "--output", "json", "--limit", "100")
    created = [job["CreateTime"] for job in json.loads(listed.stdout)]
    assert len(created) >= 3
    assert created == sorted(created, reverse=True)
    flags = ["--order-reversed", "--order-by", "modified_at", "--limit", "100"]
    reversed_ = bacalao(env, "job", "list", "--output", "json", *flags)
    assert reversed_.exit_code == 0, reversed_.output
    modified = [job["ModifyTime"] for job in json.loads(reversed_.stdout)]
    assert modified == sorted(modified)


def test_job_list_help_says_the_order_and_every_field_the_server_sorts_by() -> None:
    shown = bacalao({}, "job", "list", "--help")
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())
    assert "newest first" in text
    assert "the oldest first" in text
    assert "--order-reversed" in text
    for field in ORDER_COLUMNS:
        assert field in text, field


def test_a_job_id_prefix_too_short_says_so(env: dict[str, str]) -> None:
    short = bacalao(env, "job", "describe", "j-0")
    assert short.exit_code == 1
    assert "job ID 'j-0' is too short" in short.stderr
    assert "at least its first 4 characters" in short.stderr
    for command in (["job", "executions", "j-"], ["job", "logs", "j"], ["job", "stop", "j-1"]):
        assert "too short" in bacalao(env, *command).stderr, command
    unknown = bacalao(env, "job", "describe", "j-ffffffff")  # long enough: plainly not found
    assert unknown.exit_code == 1
    assert "not found" in unknown.stderr
    assert "too short" not in unknown.stderr


def test_node_describe_shows_every_size_in_human_units(
    stack: Devstack, env: dict[str, str]
) -> None:
    described = bacalao(env, "node", "describe", stack.computes[0].node_id)
    assert described.exit_code == 0, described.output
    capacity = next(line for line in described.stdout.splitlines() if "Max capacity" in line)
    assert "memory=18.8Gi" in capacity
    sizes = re.findall(r"(?:memory|disk)=(\S+)", described.stdout)
    assert len(sizes) >= 4, described.stdout
    assert all(re.fullmatch(r"\d+(\.\d)?(B|Ki|Mi|Gi|Ti)", size) for size in sizes), sizes


@pytest.fixture
def foreign_server(tmp_path: Path) -> Iterator[int]:
    """A plain static-file HTTP server: it answers, but not as a requester."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_another_kind_of_server_on_the_api_port_is_named_as_such(foreign_server: int) -> None:
    for command in (["job", "list"], ["job", "describe", "j-0f6c2a8e"], ["node", "list"]):
        result = bacalao({}, "--api-port", str(foreign_server), *command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith(
            f"Error: the server at http://127.0.0.1:{foreign_server} does not look like a "
            "bacalao/Bacalhau requester (GET /api/v1/orchestrator/"
        ), result.stderr
        assert "404" in result.stderr
        assert "--api-host/--api-port" in result.stderr


def test_describe_says_why_the_node_was_chosen(stack: Devstack, env: dict[str, str]) -> None:
    """Two able compute nodes: the one asked is ranked first of two, with its scores."""
    ended = run_job(stack.api_port, noop_job())
    described = bacalao(env, "job", "describe", ended["ID"])
    assert described.exit_code == 0, described.output
    text = " ".join(described.stdout.split())
    assert "Why these nodes" in text
    assert "ranked 1 of 2, score " in text
    assert "capacity " in text


def test_node_list_shows_the_reputation_of_nodes_that_ran_jobs(
    stack: Devstack, env: dict[str, str]
) -> None:
    ended = run_job(stack.api_port, noop_job())
    ran_on = {execution["NodeID"] for execution in ended["executions"]}
    listed = bacalao(env, "node", "list", "--output", "json")
    assert listed.exit_code == 0, listed.output
    reputations = {
        node["Info"]["NodeID"]: node.get("Reputation") for node in json.loads(listed.stdout)
    }
    for node_id in ran_on:
        reputation = reputations[node_id]
        assert reputation is not None
        assert reputation["Completed"] >= 1
        assert reputation["Score"] > 0.5
    table = bacalao(env, "node", "list")
    assert "Reputation" in table.stdout
