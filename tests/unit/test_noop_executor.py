"""The ``noop`` executor, the interruption outcomes it shares with real engines, and the
default executor registry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from compute.executors.base import RunOutcome, RunRequest
from compute.executors.interrupts import CANCELLED_EXIT_CODE, TIMEOUT_EXIT_CODE
from compute.executors.noop import NoopExecutor
from compute.executors.registry import default_executors
from protocol.errors import ExecutionError, ValidationError
from protocol.job import EngineSpec
from protocol.wire import STORED
from tests.support.threads import PROMPT_S, RunInThread
from tests.support.wait import wait_until

LONG_SLEEP_S = 3600.0


def noop_request(
    tmp_path: Path, execution_id: str = "e-1", timeout_s: float = 60.0, **params: Any
) -> RunRequest:
    return RunRequest(
        job_id="j-1",
        execution_id=execution_id,
        # as the job came in a message: params kept when they do not parse, for the run to say
        engine=EngineSpec.model_validate({"Type": "noop", "Params": params}, context=STORED),
        results_dir=tmp_path / execution_id,
        timeout_s=timeout_s,
    )


def test_returns_stdout_stderr_and_the_exit_code_and_writes_no_file(tmp_path: Path) -> None:
    request = noop_request(tmp_path, ExitCode=7, Stdout="out\n", Stderr="err\n")

    outcome = NoopExecutor().run(request)

    assert outcome == RunOutcome(exit_code=7, stdout="out\n", stderr="err\n")
    assert not request.results_dir.exists()


def test_defaults_to_success_with_empty_output(tmp_path: Path) -> None:
    request = noop_request(tmp_path)

    assert NoopExecutor().run(request) == RunOutcome(exit_code=0, stdout="", stderr="")


def test_params_are_matched_case_insensitively(tmp_path: Path) -> None:
    request = noop_request(tmp_path, exitcode=2, STDOUT="x")

    outcome = NoopExecutor().run(request)
    assert (outcome.exit_code, outcome.stdout) == (2, "x")


def test_bad_params_raise_execution_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match=r"Engine\.Params\.ExitCode"):
        NoopExecutor().run(noop_request(tmp_path, ExitCode=300))


def test_sleep_ends_at_the_timeout(tmp_path: Path) -> None:
    request = noop_request(tmp_path, timeout_s=0.05, SleepSeconds=LONG_SLEEP_S, Stdout="x")
    started = time.monotonic()

    outcome = NoopExecutor().run(request)

    assert time.monotonic() - started < PROMPT_S
    assert outcome == RunOutcome(TIMEOUT_EXIT_CODE, "execution timed out after 0.05s", "", "")


def test_cancel_from_another_thread_ends_the_sleep(tmp_path: Path) -> None:
    executor = NoopExecutor()
    run = RunInThread(executor, noop_request(tmp_path, SleepSeconds=LONG_SLEEP_S))
    wait_until(lambda: "e-1" in executor.running(), timeout_s=PROMPT_S, message="run started")

    executor.cancel("e-1")

    assert run.join() == RunOutcome(CANCELLED_EXIT_CODE, "cancelled", "", "")
    assert executor.running() == []


def test_cancel_only_stops_its_own_execution(tmp_path: Path) -> None:
    executor = NoopExecutor()
    first = RunInThread(executor, noop_request(tmp_path, "e-1", SleepSeconds=LONG_SLEEP_S))
    second = RunInThread(executor, noop_request(tmp_path, "e-2", SleepSeconds=LONG_SLEEP_S))
    wait_until(lambda: executor.running() == ["e-1", "e-2"], timeout_s=PROMPT_S)

    executor.cancel("e-2")
    assert second.join().error == "cancelled"
    assert executor.running() == ["e-1"]

    executor.cancel("e-1")
    assert first.join().error == "cancelled"


def test_cancel_before_the_run_starts_cancels_it_at_once(tmp_path: Path) -> None:
    executor = NoopExecutor()
    executor.cancel("e-1")

    outcome = executor.run(noop_request(tmp_path, SleepSeconds=LONG_SLEEP_S))

    assert outcome == RunOutcome(CANCELLED_EXIT_CODE, "cancelled", "", "")
    assert executor.run(noop_request(tmp_path, "e-2", ExitCode=1)).exit_code == 1


def test_the_same_execution_cannot_run_twice_at_once(tmp_path: Path) -> None:
    executor = NoopExecutor()
    run = RunInThread(executor, noop_request(tmp_path, SleepSeconds=LONG_SLEEP_S))
    wait_until(lambda: executor.running() == ["e-1"], timeout_s=PROMPT_S)

    with pytest.raises(ExecutionError, match="already running"):
        executor.run(noop_request(tmp_path))

    executor.cancel("e-1")
    assert run.join().exit_code == CANCELLED_EXIT_CODE


def test_noop_describes_itself() -> None:
    executor = NoopExecutor()

    assert executor.type == "noop"
    assert executor.is_installed()
    assert executor.extra_inputs(EngineSpec(type="noop")) == []


NO_DOCKER = "unix:///nonexistent/docker.sock"  # this host's daemon, if any, stays out


def test_default_executors_offer_wasm_and_noop() -> None:
    registry = default_executors(docker_host=NO_DOCKER)

    assert registry.installed() == ["noop", "wasm"]
    assert registry.get("WASM").type == "wasm"
    assert registry.get("Noop").type == "noop"


def test_default_executors_leave_out_disabled_types() -> None:
    registry = default_executors(disabled=["Wasm"], docker_host=NO_DOCKER)

    assert registry.installed() == ["noop"]
    assert not registry.has("wasm")
    with pytest.raises(ValidationError, match="not available"):
        registry.get("wasm")
