"""``bacalao job logs --follow`` against a fake requester's NDJSON stream: stdout and stderr
apart, the query it sends, and a stream that fails or breaks off is a clear error."""

from __future__ import annotations

import json
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from cli.client import APIClient
from cli.main import create_app

JOB_ID = "j-0f6c2a8e-1111-4222-8333-944445555666"


def invoke(lines: list[dict[str, Any]], seen: list[httpx.Request], *args: str) -> Result:
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/x-ndjson"})

    def client(host: str, port: int, **_: object) -> APIClient:
        return APIClient(host, port, transport=httpx.MockTransport(handle))

    return CliRunner().invoke(create_app(client_factory=client, poll_interval_s=0), list(args))


def test_follow_prints_each_stream_where_it_belongs_and_ends_with_the_execution() -> None:
    seen: list[httpx.Request] = []
    lines: list[dict[str, Any]] = [
        {"ExecutionID": "e-1", "NodeID": "n-1"},
        {"Type": 1, "Stream": "stdout", "Offset": 0, "Line": "one\n"},
        {},
        {"Type": 2, "Stream": "stderr", "Offset": 0, "Line": "warn\n"},
        {"Type": 1, "Offset": 4, "Line": "two\n"},  # Bacalhau's fields alone do too
        {"End": True, "ExecutionID": "e-1"},
    ]
    result = invoke(lines, seen, "job", "logs", "-f", "--tail", "5", "-e", "e-1", JOB_ID)
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("one\ntwo\n", "warn\n")
    (request,) = seen
    assert request.url.path == f"/api/v1/orchestrator/jobs/{JOB_ID}/logs"
    assert dict(request.url.params) == {"follow": "true", "execution_id": "e-1", "tail": "5"}


def test_an_error_line_is_a_clear_error() -> None:
    result = invoke(
        [{"Error": "job j-1 has no execution with output to show"}], [], "job", "logs", "-f", JOB_ID
    )
    assert result.exit_code == 1
    assert "no execution with output to show" in result.stderr
    assert "Traceback" not in result.output


def test_a_stream_that_breaks_off_before_the_end_is_an_error() -> None:
    lines = [{"Type": 1, "Stream": "stdout", "Offset": 0, "Line": "partial\n"}]
    result = invoke(lines, [], "job", "logs", "--follow", JOB_ID)
    assert result.exit_code == 1
    assert result.stdout == "partial\n"
    assert "before the execution ended" in result.stderr


def test_a_tail_that_is_not_a_number_names_the_option() -> None:
    result = invoke([], [], "job", "logs", "--tail", "lots", JOB_ID)
    assert result.exit_code == 2
    assert "--tail" in result.output
