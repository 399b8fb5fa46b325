"""The ``bacalao`` app against a fake requester behind ``httpx.MockTransport``."""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from cli.client import APIClient
from cli.errors import WaitTimeoutError
from cli.main import create_app, main
from cli.wait import wait_for_job
from protocol.execution import ComputeState, Execution, RunCommandResult
from protocol.history import job_row
from protocol.job import Job, JobState, JobStateType
from protocol.node import ComputeNodeInfo, NodeInfo, NodeState
from protocol.states import ExecutionStateType

JOB_ID = "j-0f6c2a8e-1111-4222-8333-944445555666"
NODE_ID = "n-7a1b2c3d-1111-4222-8333-944445555666"
HELLO_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "_start")))
"""

Handler = Callable[[httpx.Request], httpx.Response]


def _execution(
    number: int,
    state: ExecutionStateType,
    *,
    stdout: str = "",
    stderr: str = "",
    message: str = "",
) -> dict[str, Any]:
    return Execution(
        id=f"e-{number:08d}-0000-4000-8000-000000000000",
        node_id=NODE_ID,
        job_id=JOB_ID,
        compute_state=ComputeState(state_type=state, message=message),
        run_output=RunCommandResult(stdout=stdout, stderr=stderr),
        create_time=number,
    ).to_wire()


class FakeRequester:
    """Just enough of the v1 API: the job walks through ``states`` one GET at a time."""

    def __init__(self, states: list[JobStateType] | None = None, message: str = "") -> None:
        self.states = states or [JobStateType.RUNNING, JobStateType.COMPLETED]
        self.message = message
        self.submitted: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self.executions: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.job_gets = 0
        self.put_error: tuple[int, dict[str, Any]] | None = None

    def job(self) -> Job:
        index = min(self.job_gets, len(self.states) - 1)
        spec = self.submitted[-1] if self.submitted else _noop_job_wire()
        job = Job.from_wire({**spec, "ID": JOB_ID, "CreateTime": 1_700_000_000_000_000_000})
        state = self.states[index]
        job.state = JobState(state_type=state, message=self.message if state.terminal else "")
        return job

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "PUT" and path == "/api/v1/orchestrator/jobs":
            if self.put_error is not None:
                return httpx.Response(self.put_error[0], json=self.put_error[1])
            self.submitted.append(json.loads(request.content)["Job"])
            return httpx.Response(
                200, json={"JobID": JOB_ID, "EvaluationID": "v-1", "Warnings": ["be nice"]}
            )
        if path == "/api/v1/orchestrator/jobs":
            return httpx.Response(200, json={"Items": [self.job().to_wire()], "NextToken": ""})
        if match := re.fullmatch(r"/api/v1/orchestrator/jobs/([^/]+)(/\w+)?", path):
            return self._job_route(request, match.group(1), match.group(2) or "")
        if path == "/api/v1/orchestrator/nodes":
            return httpx.Response(200, json={"Items": [_node().to_wire()], "NextToken": ""})
        if path == "/api/v1/agent/version":
            return httpx.Response(200, json={"Version": {"GitVersion": "v9.9.9"}})
        return httpx.Response(404, json={"Code": 404, "Message": f"no route {path}"})

    def _job_route(self, request: httpx.Request, job_id: str, sub: str) -> httpx.Response:
        if not JOB_ID.startswith(job_id):
            return httpx.Response(404, json={"Code": 404, "Message": f"job {job_id} not found"})
        if request.method == "DELETE":
            return httpx.Response(200, json={"EvaluationID": "v-stop"})
        if sub == "/executions":
            return httpx.Response(200, json={"Items": self.executions, "NextToken": ""})
        if sub == "/results":
            return httpx.Response(200, json={"Items": self.results, "NextToken": ""})
        if sub == "/history":
            entry = job_row(
                JOB_ID,
                JobStateType.PENDING,
                JobStateType.RUNNING,
                revision=2,
                time_ns=1_700_000_000_000_000_000,
                comment="bids accepted",
            ).entry()
            return httpx.Response(200, json={"Items": [entry.to_wire()], "NextToken": ""})
        job = self.job()
        self.job_gets += 1
        return httpx.Response(200, json={"Job": job.to_wire()})


def _noop_job_wire() -> dict[str, Any]:
    return {
        "Type": "batch",
        "Labels": {"team": "ml"},
        "Tasks": [{"Engine": {"Type": "noop"}, "Publisher": {"Type": "local"}}],
    }


def _node() -> NodeState:
    info = NodeInfo(
        node_id=NODE_ID,
        labels={"region": "eu"},
        compute_node_info=ComputeNodeInfo(execution_engines=["wasm"], publishers=["local"]),
    )
    return NodeState(info=info)


@pytest.fixture
def fake() -> FakeRequester:
    return FakeRequester()


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "hello.wat"
    path.write_text(HELLO_WAT)
    return path


def invoke(handler: Handler, *args: str, stdin: str | None = None) -> Result:
    def client(host: str, port: int, **_: object) -> APIClient:
        return APIClient(host, port, transport=httpx.MockTransport(handler))

    app = create_app(client_factory=client, poll_interval_s=0)
    return CliRunner().invoke(app, list(args), input=stdin)


# -- running -----------------------------------------------------------------------------


def test_wasm_run_waits_and_prints_the_program_output_exactly(
    fake: FakeRequester, module: Path
) -> None:
    fake.executions = [
        _execution(2, ExecutionStateType.BID_REJECTED, message="busy"),
        _execution(1, ExecutionStateType.COMPLETED, stdout="hello\n  world", stderr="note\n"),
    ]
    result = invoke(fake.handle, "wasm", "run", str(module), "--", "-x", "y")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello\n  world"
    assert "note" in result.stderr
    assert "Warning: be nice" in result.stderr
    assert fake.job_gets == 2  # Running, then Completed
    params = fake.submitted[0]["Tasks"][0]["Engine"]["Params"]
    assert params["EntryModule"] == "/app/hello.wasm"
    assert params["Parameters"] == ["-x", "y"]


def test_failed_job_exits_1_with_the_reason_on_stderr(module: Path) -> None:
    fake = FakeRequester([JobStateType.FAILED], message="every execution failed")
    fake.executions = [
        _execution(1, ExecutionStateType.FAILED, message="wasm trap: unreachable", stderr="boom\n"),
        _execution(2, ExecutionStateType.BID_REJECTED, message="enough bids accepted"),
    ]
    result = invoke(fake.handle, "wasm", "run", str(module))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"Error: job {JOB_ID} failed: every execution failed" in result.stderr
    assert "wasm trap: unreachable" in result.stderr
    assert "| boom" in result.stderr
    assert "enough bids accepted" not in result.stderr  # explains nothing
    assert "Traceback" not in result.output


def test_refused_bids_are_the_reason_when_nothing_ran(module: Path) -> None:
    fake = FakeRequester([JobStateType.FAILED], message="not enough nodes bid")
    fake.executions = [_execution(1, ExecutionStateType.BID_REJECTED, message="no wasm engine")]
    result = invoke(fake.handle, "wasm", "run", str(module))
    assert result.exit_code == 1
    assert "no wasm engine" in result.stderr


def test_stopped_job_exits_1(module: Path) -> None:
    fake = FakeRequester([JobStateType.STOPPED], message="stopped by user")
    result = invoke(fake.handle, "wasm", "run", str(module))
    assert result.exit_code == 1
    assert "stopped: stopped by user" in result.stderr


def test_id_only_prints_only_the_id(fake: FakeRequester, module: Path) -> None:
    fake.executions = [_execution(1, ExecutionStateType.COMPLETED, stdout="hello\n")]
    result = invoke(fake.handle, "wasm", "run", "--id-only", str(module))
    assert result.exit_code == 0, result.output
    assert result.stdout == JOB_ID + "\n"
    no_wait = invoke(fake.handle, "wasm", "run", "--id-only", "--no-wait", str(module))
    assert no_wait.stdout == JOB_ID + "\n"
    assert fake.job_gets == 2  # only the waiting run polled


def test_wait_timeout_gives_up_but_says_the_job_keeps_running(module: Path) -> None:
    fake = FakeRequester([JobStateType.RUNNING])
    result = invoke(fake.handle, "wasm", "run", "--wait-timeout", "0", str(module))
    assert result.exit_code == 124  # not 1: the job did not fail, it is still running
    assert f"job {JOB_ID} is still Running after 0s" in result.stderr


def test_wait_for_job_polls_at_the_interval_until_the_deadline() -> None:
    fake = FakeRequester([JobStateType.PENDING, JobStateType.RUNNING])
    fake.submitted.append(_noop_job_wire())
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with (
        APIClient(transport=httpx.MockTransport(fake.handle)) as client,
        pytest.raises(WaitTimeoutError, match="still Running after 5s"),
    ):
        wait_for_job(
            client, JOB_ID, timeout_s=5, poll_interval_s=2, clock=lambda: now[0], sleep=sleep
        )
    assert slept == [2, 2, 1]  # the last nap stops at the deadline
    assert fake.job_gets == 4


def test_dry_run_contacts_nobody(fake: FakeRequester, module: Path) -> None:
    result = invoke(fake.handle, "wasm", "run", "--dry-run", "-l", "a=b", str(module))
    assert result.exit_code == 0, result.output
    assert fake.requests == []
    assert Job.from_wire(yaml.safe_load(result.stdout)).labels == {"a": "b"}


def test_bad_option_value_is_a_usage_error(fake: FakeRequester, module: Path) -> None:
    result = invoke(fake.handle, "wasm", "run", "-i", "relative/path", str(module))
    assert result.exit_code == 2
    assert "--input" in result.stderr
    assert fake.requests == []


def test_server_rejection_shows_its_message(fake: FakeRequester, module: Path) -> None:
    fake.put_error = (
        400,
        {"Code": 400, "Message": "Tasks[0].Engine.Type: unknown engine", "Field": "x"},
    )
    result = invoke(fake.handle, "wasm", "run", str(module))
    assert result.exit_code == 1
    assert "Error: Tasks[0].Engine.Type: unknown engine" in result.stderr


def test_job_run_without_a_file_on_a_terminal_is_a_usage_error() -> None:
    """Bacalhau reads the job from stdin when no file is named; on a terminal that would
    wait for typing, so it says what to do instead (a real pseudo-terminal as stdin)."""
    primary, secondary = pty.openpty()
    command = [sys.executable, "-c", "from cli.main import main; main()", "job", "run"]
    try:
        result = subprocess.run(
            [*command, "--api-port", "9"],  # never contacted
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert result.returncode == 2, result.stderr
    assert "no job file given, and stdin is a terminal" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [[], ["-"]])
def test_job_run_reads_stdin_without_a_file_or_with_dash(
    fake: FakeRequester, args: list[str]
) -> None:
    fake.executions = [_execution(1, ExecutionStateType.COMPLETED, stdout="from noop")]
    result = invoke(fake.handle, "job", "run", *args, stdin=json.dumps(_noop_job_wire()))
    assert result.exit_code == 0, result.output
    assert result.stdout == "from noop"


@pytest.mark.parametrize("command", [["wasm", "run"], ["docker", "run"]])
def test_an_input_url_whose_port_is_a_word_is_refused(
    fake: FakeRequester, module: Path, command: list[str]
) -> None:
    program = str(module) if command[0] == "wasm" else "busybox:1"
    result = invoke(fake.handle, *command, "-i", "http://x:relative", program)
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.replace("│", " ").split())
    assert "'--input'" in message
    assert "the port 'relative' is not a number" in message
    assert fake.requests == []


def test_job_list_asks_for_the_order_given_and_repeats_it_to_continue() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Items": [], "NextToken": "tok2"})

    result = invoke(handler, "job", "list", "--order-reversed", "--order-by", "name", "-A")
    assert result.exit_code == 0, result.output
    params = seen[0].url.params
    assert (params["reverse"], params["order_by"]) == ("true", "name")  # Z to A
    assert (
        "More jobs: bacalao job list --order-by name --order-reversed --all-namespaces "
        "--next-token tok2" in result.stderr
    )
    invoke(handler, "job", "list")
    assert seen[-1].url.params["reverse"] == "true"  # the default order: newest first
    invoke(handler, "job", "list", "--order-by", "modified_at")
    assert seen[-1].url.params["reverse"] == "true"  # latest changes first
    assert invoke(handler, "job", "list", "--reverse").exit_code == 0  # the older spelling
    assert "reverse" not in seen[-1].url.params  # oldest first
    invoke(handler, "job", "list", "--order-by", "id")
    assert "reverse" not in seen[-1].url.params  # IDs A to Z


def test_job_run_reads_a_bacalhau_file_from_stdin(fake: FakeRequester) -> None:
    fake.executions = [_execution(1, ExecutionStateType.COMPLETED, stdout="from noop")]
    text = yaml.safe_dump({"Job": _noop_job_wire()})
    result = invoke(fake.handle, "job", "run", "-", stdin=text)
    assert result.exit_code == 0, result.output
    assert result.stdout == "from noop"
    assert fake.submitted[0]["Labels"] == {"team": "ml"}


def test_unreachable_requester_is_one_friendly_line() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    result = invoke(refuse, "--api-port", "4321", "job", "list")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: cannot reach the requester at http://127.0.0.1:4321: "
        "is `bacalao serve` or `bacalao devstack` running?"
    )
    assert "Traceback" not in result.output


def test_console_entry_point_never_shows_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(sys, "argv", ["bacalao", "--api-port", str(port), "job", "list"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert f"cannot reach the requester at http://127.0.0.1:{port}" in captured.err
    assert "Traceback" not in captured.err


def test_command_level_api_options_win(fake: FakeRequester) -> None:
    result = invoke(
        fake.handle, "--api-port", "1", "node", "list", "--api-host", "h", "--api-port", "2"
    )
    assert result.exit_code == 0, result.output
    assert str(fake.requests[0].url).startswith("http://h:2/api/v1/orchestrator/nodes")


# -- inspecting --------------------------------------------------------------------------


def test_job_list_as_table_json_and_yaml(fake: FakeRequester) -> None:
    fake.states = [JobStateType.COMPLETED]
    table = invoke(fake.handle, "job", "list", "--limit", "5", "--labels", "team=ml")
    assert table.exit_code == 0, table.output
    assert "j-0f6c2a8e" in table.stdout
    assert "Completed" in table.stdout
    query = fake.requests[0].url.params
    assert (query["limit"], query["labels"], query["namespace"]) == ("5", "team=ml", "default")

    as_json = invoke(fake.handle, "job", "list", "--output", "json", "--all-namespaces")
    assert [job["ID"] for job in json.loads(as_json.stdout)] == [JOB_ID]
    assert "namespace" not in fake.requests[-1].url.params

    as_yaml = invoke(fake.handle, "job", "list", "--output", "yaml")
    assert yaml.safe_load(as_yaml.stdout)[0]["State"]["StateType"] == "Completed"


def test_describe_executions_history_and_stop(fake: FakeRequester) -> None:
    fake.states = [JobStateType.COMPLETED]
    fake.executions = [_execution(1, ExecutionStateType.COMPLETED, stdout="the answer")]
    described = invoke(fake.handle, "job", "describe", "j-0f6c", "--wide")
    assert described.exit_code == 0, described.output
    assert JOB_ID in described.stdout
    assert "the answer" in described.stdout
    as_json = json.loads(invoke(fake.handle, "job", "describe", JOB_ID, "--output", "json").stdout)
    assert as_json["Executions"][0]["ComputeState"]["StateType"] == 7

    executions = invoke(fake.handle, "job", "executions", JOB_ID)
    assert "Completed" in executions.stdout
    history = invoke(fake.handle, "job", "history", JOB_ID)
    assert "Pending -> Running" in history.stdout
    assert "bids accepted" in history.stdout

    stopped = invoke(fake.handle, "job", "stop", JOB_ID, "--reason", "enough")
    assert stopped.exit_code == 0
    assert "v-stop" in stopped.stdout
    assert fake.requests[-1].url.params["reason"] == "enough"

    missing = invoke(fake.handle, "job", "describe", "j-nope")
    assert missing.exit_code == 1
    assert "Error: job j-nope not found" in missing.stderr


def test_node_list_and_version(fake: FakeRequester) -> None:
    nodes = invoke(fake.handle, "node", "list", "--output", "json")
    assert json.loads(nodes.stdout)[0]["Info"]["NodeID"] == NODE_ID
    table = invoke(fake.handle, "node", "list")
    assert "n-7a1b2c3d" in table.stdout
    version = invoke(fake.handle, "version", "--output", "json")
    assert json.loads(version.stdout)["ServerVersion"]["GitVersion"] == "v9.9.9"


# -- results -----------------------------------------------------------------------------


def _result_folder(root: Path, text: str) -> dict[str, Any]:
    root.mkdir(parents=True)
    (root / "stdout").write_text(text)
    (root / "stderr").write_text("")
    (root / "exitCode").write_text("0")
    (root / "outputs").mkdir()
    (root / "outputs" / "answer.txt").write_text("42")
    return {"Type": "local", "Params": {"URL": root.as_uri()}}


def test_job_get_writes_job_folder(
    fake: FakeRequester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.states = [JobStateType.COMPLETED]
    fake.results = [_result_folder(tmp_path / "published", "hello\n")]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke(fake.handle, "job", "get", "j-0f6c")
    assert result.exit_code == 0, result.output
    folder = work / f"job-{JOB_ID}"
    assert (folder / "stdout").read_text() == "hello\n"
    assert (folder / "exitCode").read_text() == "0"
    assert (folder / "outputs" / "answer.txt").read_text() == "42"

    again = invoke(fake.handle, "job", "get", JOB_ID)
    assert again.exit_code == 1
    assert "already exists and is not empty" in again.stderr


def test_job_get_puts_each_execution_in_its_own_folder(fake: FakeRequester, tmp_path: Path) -> None:
    fake.states = [JobStateType.COMPLETED]
    fake.results = [
        _result_folder(tmp_path / "one", "first"),
        _result_folder(tmp_path / "two", "second"),
    ]
    target = tmp_path / "out"
    result = invoke(fake.handle, "job", "get", JOB_ID, "--output-dir", str(target))
    assert result.exit_code == 0, result.output
    assert (target / "execution-1" / "stdout").read_text() == "first"
    assert (target / "execution-2" / "stdout").read_text() == "second"


def test_job_get_without_results_explains_why(fake: FakeRequester, tmp_path: Path) -> None:
    fake.states = [JobStateType.RUNNING]
    result = invoke(fake.handle, "job", "get", JOB_ID, "--output-dir", str(tmp_path / "x"))
    assert result.exit_code == 1
    assert "has no results yet: it is Running" in result.stderr
    assert not (tmp_path / "x").exists()
    fake.states = [JobStateType.FAILED]
    failed = invoke(fake.handle, "job", "get", JOB_ID, "--output-dir", str(tmp_path / "x"))
    assert f"job {JOB_ID} is Failed and published no results" in failed.stderr


def test_job_logs_prints_the_programs_streams(fake: FakeRequester) -> None:
    fake.states = [JobStateType.COMPLETED]
    fake.executions = [
        _execution(1, ExecutionStateType.FAILED, stdout="first try", stderr="boom"),
        _execution(2, ExecutionStateType.COMPLETED, stdout="the answer\n", stderr="warn\n"),
    ]
    shown = invoke(fake.handle, "job", "logs", JOB_ID)
    assert shown.exit_code == 0, shown.output
    assert (shown.stdout, shown.stderr) == ("the answer\n", "warn\n")
    first = invoke(fake.handle, "job", "logs", JOB_ID, "-e", "e-00000001")
    assert (first.stdout, first.stderr) == ("first try", "boom")
    unknown = invoke(fake.handle, "job", "logs", JOB_ID, "-e", "e-9")
    assert unknown.exit_code == 1
    assert "no execution of job" in unknown.stderr

    fake.executions = [_execution(1, ExecutionStateType.BID_ACCEPTED)]
    waiting = invoke(fake.handle, "job", "logs", JOB_ID)
    assert waiting.exit_code == 1
    assert "no ended execution with output yet" in waiting.stderr
