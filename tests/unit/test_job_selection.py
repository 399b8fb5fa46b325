"""The operator's job selection rules (Bacalhau's ``--job-selection-*``): an HTTP probe and an
exec probe, each against the real thing (a local HTTP server, /bin/sh), and stateless jobs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cli.node_parsing import parse_job_selection
from compute.bidding.base import BidRequest
from compute.bidding.probe_exec import ExecProbeRule
from compute.bidding.probe_http import HTTPProbeRule
from compute.bidding.selection import JobSelection, selection_rules
from compute.bidding.stateless import StatelessRule
from protocol.errors import ValidationError
from protocol.job import Job
from protocol.resources import Resources
from tests.support.wait import wait_until

NODE = "n-test"


def request(**task: Any) -> BidRequest:
    job = Job.model_validate({"ID": "j-probe", "Tasks": [{"Engine": {"Type": "noop"}, **task}]})
    return BidRequest(
        job=job,
        resources=Resources(cpu=0.1),
        node_labels={},
        engines=frozenset({"noop"}),
        publishers=frozenset({"noop"}),
        storage_sources=frozenset({"inline"}),
        max_job_resources=Resources(cpu=4),
        accept_networked_jobs=False,
        max_execution_timeout_s=0,
    )


class Probe(BaseHTTPRequestHandler):
    """Answers by path; records what it was sent."""

    seen: list[dict[str, Any]] = []
    release = threading.Event()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        Probe.seen.append(json.loads(self.rfile.read(length)))
        if self.path == "/slow":
            Probe.release.wait(30)
        answers: dict[str, tuple[int, bytes]] = {
            "/plain": (200, b"fine"),
            "/yes": (200, b'{"ShouldBid": true, "Reason": "welcome"}'),
            "/no": (200, b'{"shouldBid": false, "reason": "no GPUs today"}'),
            "/teapot": (418, b"I'm a teapot"),
            "/moved": (302, b""),
            "/stringy": (200, b'{"ShouldBid": "false"}'),
            "/slow": (200, b""),
        }
        status, body = answers.get(self.path, (404, b""))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def probe_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Probe.seen.clear()
    Probe.release.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        Probe.release.set()
        server.shutdown()
        server.server_close()


def test_the_http_probe_gets_the_job_and_node_and_its_answer_decides(probe_url: str) -> None:
    assert HTTPProbeRule(f"{probe_url}/plain", NODE).check(request()).should_bid
    assert Probe.seen[0]["NodeID"] == NODE
    assert Probe.seen[0]["Job"]["ID"] == "j-probe"
    assert HTTPProbeRule(f"{probe_url}/yes", NODE).check(request()).should_bid
    refused = HTTPProbeRule(f"{probe_url}/no", NODE).check(request())
    assert not refused.should_bid
    assert "no GPUs today" in refused.reason
    assert f"{probe_url}/no" in refused.reason
    teapot = HTTPProbeRule(f"{probe_url}/teapot", NODE).check(request())
    assert not teapot.should_bid
    assert "418" in teapot.reason
    moved = HTTPProbeRule(f"{probe_url}/moved", NODE).check(request())
    assert not moved.should_bid, "a redirect is no answer"
    assert "302" in moved.reason
    stringy = HTTPProbeRule(f"{probe_url}/stringy", NODE).check(request())
    assert not stringy.should_bid, '"false" is not a yes'
    assert "ShouldBid='false'" in stringy.reason


def test_an_http_probe_that_does_not_answer_refuses(probe_url: str) -> None:
    slow = HTTPProbeRule(f"{probe_url}/slow", NODE, timeout_s=0.3).check(request())
    assert not slow.should_bid
    assert "did not answer in time" in slow.reason
    gone = HTTPProbeRule("http://127.0.0.1:1/probe", NODE).check(request())
    assert not gone.should_bid
    assert "failed" in gone.reason


def test_the_exec_probe_reads_the_job_on_stdin_and_in_its_environment() -> None:
    assert ExecProbeRule("exit 0", NODE).check(request()).should_bid
    on_stdin = ExecProbeRule('grep -q \'"NodeID": "n-test"\'', NODE)
    assert on_stdin.check(request()).should_bid
    in_env = ExecProbeRule(
        'case "$BACALHAU_JOB_SELECTION_PROBE_DATA" in *j-probe*) exit 0;; esac; exit 1', NODE
    )
    assert in_env.check(request()).should_bid


def test_a_job_too_big_for_the_environment_still_reaches_the_exec_probe_on_stdin() -> None:
    big = request(Env={"BLOB": "x" * 200_000})
    probe = ExecProbeRule('test -z "$BACALHAU_JOB_SELECTION_PROBE_DATA" && grep -q j-probe', NODE)
    assert probe.check(big).should_bid


def test_the_exec_probe_refuses_with_the_last_line_of_its_stderr() -> None:
    refused = ExecProbeRule("echo checking >&2; echo 'no GPUs here' >&2; exit 3", NODE)
    decision = refused.check(request())
    assert not decision.should_bid
    assert decision.reason.endswith("said no: no GPUs here")
    silent = ExecProbeRule("exit 4", NODE).check(request())
    assert "exit status 4" in silent.reason


def test_an_exec_probe_that_crashes_refuses_saying_how() -> None:
    crashed = ExecProbeRule("kill -SEGV $$", NODE).check(request())
    assert not crashed.should_bid
    assert crashed.reason == "job selection probe `kill -SEGV $$` was killed by SIGSEGV (signal 11)"
    raised = ExecProbeRule('python3 -c "1/0"', NODE).check(request())
    assert not raised.should_bid
    assert raised.reason.endswith("said no: ZeroDivisionError: division by zero")
    missing = ExecProbeRule("/no/such/probe", NODE).check(request())
    assert not missing.should_bid
    assert missing.reason.endswith("/no/such/probe: not found")


def test_an_exec_probe_that_runs_too_long_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"sleep 30 & echo $! > {pid_file}; wait"
    decision = ExecProbeRule(command, NODE, timeout_s=0.5).check(request())
    assert not decision.should_bid
    assert "killed" in decision.reason
    child = int(pid_file.read_text())

    def gone() -> bool:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state == "Z"

    wait_until(gone, 10, message="the probe's own child killed too")


def test_stateless_jobs_are_refused_only_when_asked() -> None:
    inputs = [{"Target": "/in", "Source": {"Type": "inline", "Params": {"URL": "data:,x"}}}]
    assert not StatelessRule().check(request()).should_bid
    assert StatelessRule().check(request(InputSources=inputs)).should_bid
    names = [rule.name for rule in selection_rules(JobSelection(), NODE)]
    assert names == []
    chosen = JobSelection(reject_stateless=True, probe_http="http://x", probe_exec="true")
    assert [rule.name for rule in selection_rules(chosen, NODE)] == [
        "job-selection-reject-stateless",
        "job-selection-probe-http",
        "job-selection-probe-exec",
    ]


def test_a_probe_url_that_is_not_http_names_its_flag() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_job_selection(False, "ftp://probe", None, 10.0)
    assert exc.value.field == "job-selection-probe-http"
    assert parse_job_selection(True, " http://p/ ", " true ", 2.0) == JobSelection(
        reject_stateless=True, probe_http="http://p/", probe_exec="true", probe_timeout_s=2.0
    )
