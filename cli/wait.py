"""Submit a job, wait for it, and report how it ended: shared by every ``run`` command.

Exit codes: 0 when the job completed, 1 when it failed or was stopped, 124 when it outlived
``--wait-timeout`` and 130 when the wait was interrupted (in both, the job keeps running).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cli.client import APIClient, PutJobResult
from cli.context import DEFAULT_POLL_INTERVAL_S
from cli.errors import APIError, CLIError, WaitTimeoutError
from cli.jobspec import BuiltJob, job_to_yaml
from cli.logs import Followed, follow_logs
from cli.output import (
    print_error,
    print_note,
    print_warning,
    stderr_console,
    write_stderr,
    write_stdout,
)
from cli.tables import execution_message
from protocol.execution import Execution
from protocol.job import Job, JobStateType
from protocol.states import ExecutionStateType

DEFAULT_WAIT_TIMEOUT_S = 600.0
EXIT_INTERRUPTED = 130
_STDERR_TAIL_LINES = 5
_FAILED_STATES = (ExecutionStateType.FAILED, ExecutionStateType.CANCELLED)
_REJECTED_STATES = (ExecutionStateType.BID_REJECTED, ExecutionStateType.ASK_FOR_BID_REJECTED)


@dataclass(frozen=True)
class RunOptions:
    wait: bool = True
    follow: bool = False  # print the output as it is written, not once the job ended
    id_only: bool = False
    dry_run: bool = False
    wait_timeout_s: float = DEFAULT_WAIT_TIMEOUT_S
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S


def wait_for_job(
    client: APIClient,
    job_id: str,
    *,
    timeout_s: float,
    poll_interval_s: float,
    on_poll: Callable[[Job], None] = lambda job: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Job:
    """Poll the job until it is Completed, Failed or Stopped; WaitTimeoutError after
    ``timeout_s`` seconds (the first look always happens)."""
    deadline = clock() + timeout_s
    while True:
        job = client.get_job(job_id)
        on_poll(job)
        if job.terminal:
            return job
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeoutError(
                f"job {job_id} is still {job.state.state_type.value} after {timeout_s:g}s; "
                f"it keeps running: follow it with `bacalao job describe {job_id}`"
            )
        sleep(min(poll_interval_s, remaining))


def _wait_with_spinner(client: APIClient, job_id: str, options: RunOptions) -> Job:
    console = stderr_console()
    if not console.is_terminal:
        return wait_for_job(
            client,
            job_id,
            timeout_s=options.wait_timeout_s,
            poll_interval_s=options.poll_interval_s,
        )
    with console.status(f"Job {job_id} submitted") as status:

        def show(job: Job) -> None:
            message = f": {job.state.message}" if job.state.message else ""
            status.update(f"Job {job_id} {job.state.state_type.value}{message}")

        return wait_for_job(
            client,
            job_id,
            timeout_s=options.wait_timeout_s,
            poll_interval_s=options.poll_interval_s,
            on_poll=show,
        )


def completed_runs(executions: list[Execution]) -> list[Execution]:
    """The completed executions, in the order they were created."""
    done = [item for item in executions if item.state == ExecutionStateType.COMPLETED]
    return sorted(done, key=lambda item: (item.create_time, item.id))


def first_completed(executions: list[Execution]) -> Execution | None:
    runs = completed_runs(executions)
    return runs[0] if runs else None


def _print_output(client: APIClient, job: Job, followed: Followed | None = None) -> None:
    """The program's stdout exactly on stdout, its stderr on stderr. With Count > 1, every
    completed run's, each after a header line on stderr naming the execution and its node
    (so stdout holds only what the programs wrote). ``followed``: an execution whose output
    was printed as it came already (with Count > 1, the others are printed)."""
    runs = completed_runs(client.executions(job.id))
    if job.count <= 1:
        runs = runs[:1]
    shown = [run for run in runs if run.run_output is not None]
    if followed is not None:
        if job.count <= 1 or not followed.execution_id:
            return
        shown = [run for run in shown if run.id != followed.execution_id]
    elif not shown:
        print_note(f"job {job.id} completed without reporting any output", style="dim")
        return
    truncated = False
    for execution in shown:
        output = execution.run_output
        assert output is not None
        if job.count > 1:
            write_stderr(f"== execution {execution.id} on {execution.node_id} ==\n")
        write_stdout(output.stdout)
        write_stderr(output.stderr)
        truncated = truncated or output.stdout_truncated or output.stderr_truncated
        if output.exit_code:
            print_note(f"(the program exited with code {output.exit_code})", style="yellow")
    if truncated:
        print_note(f"(output truncated: `bacalao job get {job.id}` fetches all of it)", "dim")


def _failure_lines(execution: Execution) -> list[str]:
    message = execution_message(execution) or "no reason given"
    lines = [f"  execution {execution.id} on {execution.node_id}: {message}"]
    output = execution.run_output
    if output is not None and output.stderr.strip():
        tail = output.stderr.rstrip().splitlines()[-_STDERR_TAIL_LINES:]
        lines += [f"    | {line}" for line in tail]
    return lines


def _worth_reporting(executions: list[Execution]) -> list[Execution]:
    """Failed and cancelled executions; rejected bids only when nothing else went wrong
    (a bid turned down because enough were accepted explains nothing)."""
    failed = [item for item in executions if item.state in _FAILED_STATES]
    return failed or [item for item in executions if item.state in _REJECTED_STATES]


def report_failure(client: APIClient, job: Job) -> None:
    """Why the job did not complete: its own message, then its executions' messages."""
    state = job.state.state_type.value.lower()
    reason = f": {job.state.message}" if job.state.message else ""
    print_error(f"job {job.id} {state}{reason}")
    try:
        executions = client.executions(job.id)
    except APIError as exc:
        print_note(f"  (its executions cannot be listed: {exc})", style="dim")
        return
    lines: list[str] = []
    for execution in _worth_reporting(executions):
        lines += [line for line in _failure_lines(execution) if line not in lines]
    for line in lines:
        print_note(line)
    print_note(f"  more: bacalao job describe {job.id}", style="dim")


def _announce(result: PutJobResult, options: RunOptions) -> None:
    for warning in result.warnings:
        print_warning(warning)
    if options.id_only:
        write_stdout(result.job_id + "\n")
    elif not options.wait:
        write_stdout(
            f"Job submitted: {result.job_id}\n"
            f"  follow it:      bacalao job describe {result.job_id}\n"
            f"  fetch results:  bacalao job get {result.job_id}\n"
        )


def _follow(client: APIClient, job_id: str, count: int, options: RunOptions) -> Followed | None:
    """Print the job's output as it is written (:mod:`cli.logs`; with Count > 1, one
    execution's, after a header line on stderr); None when it cannot be followed, so that
    it is printed once the job ended instead."""

    def header(followed: Followed) -> None:
        if count > 1:
            write_stderr(f"== execution {followed.execution_id} on {followed.node_id} ==\n")

    deadline_s = time.monotonic() + options.wait_timeout_s
    try:
        return follow_logs(client, job_id, deadline_s=deadline_s, on_execution=header)
    except WaitTimeoutError:
        raise
    except CLIError as exc:
        print_note(f"({exc}; its output is printed when it ends)", style="dim")
        return None


def submit(client: APIClient, built: BuiltJob, options: RunOptions) -> int:
    """Submit (or print, with --dry-run) the job and follow it; returns the exit code."""
    for warning in built.warnings:
        print_warning(warning)
    if options.dry_run:
        write_stdout(job_to_yaml(built.job))
        return 0
    result = client.put_job(built.job)
    _announce(result, options)
    if not options.wait:
        return 0
    followed: Followed | None = None
    try:
        if options.follow:
            followed = _follow(client, result.job_id, built.job.count, options)
        job = _wait_with_spinner(client, result.job_id, options)
    except KeyboardInterrupt:
        print_note(
            f"Stopped waiting; job {result.job_id} keeps running: "
            f"bacalao job describe {result.job_id}",
            style="yellow",
        )
        return EXIT_INTERRUPTED
    if job.state.state_type == JobStateType.COMPLETED:
        if not options.id_only:
            _print_output(client, job, followed)
        return 0
    report_failure(client, job)
    return 1
