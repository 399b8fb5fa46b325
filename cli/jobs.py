"""``bacalao job ...``: submit, list, inspect, stop jobs and fetch their results."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.text import Text

from cli.client import APIClient
from cli.context import ApiHostOption, ApiPortOption, ApiTokenOption, settings
from cli.errors import CLIError
from cli.jobspec import load_job
from cli.logs import follow_logs, tailed
from cli.options import ShowFlags, SubmitFlags, with_flag_groups
from cli.output import OutputFormat, emit, print_note, write_stderr, write_stdout
from cli.progress import download_progress
from cli.submit import run_job
from cli.tables import (
    executions_table,
    fields_grid,
    history_table,
    job_overview,
    jobs_table,
    node_choices,
)
from cli.wait import EXIT_INTERRUPTED, first_completed
from protocol.execution import Execution
from protocol.job import JobStateType
from protocol.logs import MAX_TAIL_LINES
from protocol.results import download_result

app = typer.Typer(
    name="job", help="Submit, inspect and stop jobs; fetch results.", no_args_is_help=True
)

JobIdArgument = Annotated[
    str,
    typer.Argument(help="The job ID, or a unique prefix of it.", metavar="ID", show_default=False),
]
DEFAULT_LIST_LIMIT = 10
TIME_ORDER_FIELDS = frozenset({"", "created_at", "modified_at"})  # "": created_at
# What the requester's GET /jobs accepts as order_by (requester/store/paging.py ORDER_COLUMNS).
JOB_ORDER_FIELDS = ("created_at", "modified_at", "id", "name", "state")


@app.command("run")
@with_flag_groups
def run(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(
            help="A Bacalhau v1 job in YAML or JSON (with or without a top-level Job: key, "
            "or the output of `bacalao job describe --output yaml`); - or nothing reads it "
            "from stdin.",
            show_default=False,
            metavar="FILE|-",
        ),
    ] = None,
    *,
    how: SubmitFlags,
) -> None:
    """Submit a job file and, by default, wait for it and print its output.

    Exits 0 when the job completed, 1 when it failed or was stopped (the reason goes to
    stderr). Bacalhau's own job files work unchanged, and so does what `job describe` prints:
    `bacalao job describe ID --output yaml | bacalao job run` runs the job again, as a new job.
    """
    if file is None and _stdin_is_terminal():
        raise typer.BadParameter(
            "no job file given, and stdin is a terminal: name one (bacalao job run job.yaml) "
            "or pipe one in (bacalao job describe ID --output yaml | bacalao job run)",
            param_hint="'FILE'",
        )
    if file is None or file == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        try:
            text, source = Path(file).read_text(encoding="utf-8"), file
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    run_job(ctx, load_job(text, source), how)


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced by something without a TTY
        return False


@app.command("list")
@with_flag_groups
def list_jobs(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", help="How many jobs to show.", min=1)
    ] = DEFAULT_LIST_LIMIT,
    labels: Annotated[
        str,
        typer.Option(
            "--labels",
            help="Only jobs whose labels match this selector, e.g. 'env=prod,team in (a,b)'.",
        ),
    ] = "",
    order_by: Annotated[
        str,
        typer.Option(
            "--order-by",
            help=f"Sort by this field: {', '.join(JOB_ORDER_FIELDS)} (default: created_at).",
            show_default=False,
        ),
    ] = "",
    reverse: Annotated[
        bool,
        typer.Option(
            "--order-reversed",
            "--reverse",
            help="Reverse the order: oldest first for times, Z to A for names and IDs.",
        ),
    ] = False,
    namespace: Annotated[
        str, typer.Option("--namespace", help="Only jobs of this namespace.")
    ] = "default",
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Jobs of every namespace.")
    ] = False,
    next_token: Annotated[
        str,
        typer.Option(
            "--next-token", help="Continue a previous listing where it stopped.", show_default=False
        ),
    ] = "",
    *,
    show: ShowFlags,
) -> None:
    """List jobs, newest first (by creation time): the 10 most recent, as Bacalhau shows them.

    --order-by sorts by another field: times newest first, names, IDs and states A to Z.
    --order-reversed (or --reverse) turns the order around: the oldest first.
    """
    with show.client(ctx) as client:
        page = client.list_jobs(
            limit=limit,
            next_token=next_token,
            order_by=order_by,
            reverse=newest_first(order_by) != reverse,
            labels=labels,
            namespace="" if all_namespaces else namespace,
        )
    show.show_items(page.items, jobs_table)
    if page.next_token and show.output is OutputFormat.TABLE:
        flags: list[str] = []  # the next page needs the same query (its token says where)
        flags += ["--order-by", order_by] if order_by else []
        flags += ["--order-reversed"] if reverse else []
        flags += ["--labels", labels] if labels else []
        if all_namespaces or namespace != "default":
            flags += ["--all-namespaces"] if all_namespaces else ["--namespace", namespace]
        flags += ["--limit", str(limit)] if limit != DEFAULT_LIST_LIMIT else []
        again = shlex.join(["bacalao", "job", "list", *flags, "--next-token", page.next_token])
        print_note(f"More jobs: {again}", style="dim")


def newest_first(order_by: str) -> bool:
    """Whether a listing sorted by ``order_by`` starts with the latest (``ls -t``'s rule):
    the API sorts ascending, the CLI shows times newest first."""
    return order_by in TIME_ORDER_FIELDS


@app.command("describe")
@with_flag_groups
def describe(ctx: typer.Context, job_id: JobIdArgument, *, show: ShowFlags) -> None:
    """Show a job: its spec, state, executions and the output of its first completed run."""
    with show.client(ctx) as client:
        job = client.get_job(job_id)
        executions = client.executions(job.id)
        history = client.history(job.id) if show.output is OutputFormat.TABLE else []

    def renderables() -> list[RenderableType]:
        shown: list[RenderableType] = [*job_overview(job), Text("")]
        shown.append(executions_table(executions, show.wide, title="Executions"))
        choices = node_choices(executions, history)
        if choices:
            shown += [Text(""), fields_grid(choices, title="Why these nodes")]
        done = first_completed(executions)
        if done is not None and done.run_output is not None and done.run_output.stdout:
            shown += [Text(""), Text("Standard output", style="bold underline")]
            shown.append(Text(done.run_output.stdout.rstrip("\n")))
        return shown

    emit(
        show.output,
        lambda: {"Job": job.to_wire(), "Executions": [e.to_wire() for e in executions]},
        renderables,
    )


@app.command("executions")
@with_flag_groups
def executions(ctx: typer.Context, job_id: JobIdArgument, *, show: ShowFlags) -> None:
    """List a job's executions: one per node asked to run it, with its state."""
    with show.client(ctx) as client:
        show.show_items(client.executions(job_id), executions_table)


@app.command("history")
@with_flag_groups
def history(ctx: typer.Context, job_id: JobIdArgument, *, show: ShowFlags) -> None:
    """Show what happened to a job and its executions, in order."""
    with show.client(ctx) as client:
        show.show_items(client.history(job_id), history_table)


@app.command("stop")
def stop(
    ctx: typer.Context,
    job_id: JobIdArgument,
    reason: Annotated[
        str, typer.Option("--reason", help="Why, recorded in the job's history.")
    ] = "",
    api_host: ApiHostOption = None,
    api_port: ApiPortOption = None,
    api_token: ApiTokenOption = None,
) -> None:
    """Stop a job: its running executions are cancelled and it ends as Stopped."""
    with settings(ctx).client(api_host, api_port, api_token) as client:
        evaluation_id = client.stop_job(job_id, reason)
    suffix = f" (evaluation {evaluation_id})" if evaluation_id else ""
    write_stdout(f"Stopping job {job_id}{suffix}\n")


@app.command("logs")
def logs(
    ctx: typer.Context,
    job_id: JobIdArgument,
    execution_id: Annotated[
        str | None,
        typer.Option(
            "--execution-id",
            "-e",
            help="Whose output (default: the first completed execution, else the latest ended; "
            "with --follow, the one running).",
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Print the output of the running execution as its program writes it, until "
            "it ends (a job that has not started yet is waited for).",
        ),
    ] = False,
    tail: Annotated[
        int,
        typer.Option(
            "--tail",
            "-n",
            help="Only the last N lines of each stream (0: all of it).",
            min=0,
            max=MAX_TAIL_LINES,
        ),
    ] = 0,
    api_host: ApiHostOption = None,
    api_port: ApiPortOption = None,
    api_token: ApiTokenOption = None,
) -> None:
    """Print what a job's program wrote: its stdout on stdout, its stderr on stderr.

    Without --follow, the output captured when an execution ended (up to the node's
    truncation limit). With --follow, the output of the running execution as it is written,
    streamed from its compute node through the requester, ending when the execution does.
    """
    with settings(ctx).client(api_host, api_port, api_token) as client:
        if follow:
            try:
                follow_logs(client, job_id, execution_id=execution_id or "", tail=tail)
            except KeyboardInterrupt:
                print_note(f"Stopped following; job {job_id} keeps running", style="yellow")
                raise typer.Exit(EXIT_INTERRUPTED) from None
            return
        found = client.executions(job_id)
    execution: Execution | None
    if execution_id is not None:
        chosen = [e for e in found if e.id.startswith(execution_id)]
        if len(chosen) != 1:
            what = "no" if not chosen else "more than one"
            raise CLIError(f"{what} execution of job {job_id} matches {execution_id!r}")
        execution = chosen[0]
    else:
        ended = [e for e in found if e.state.terminal and e.run_output is not None]
        latest = max(ended, key=lambda e: (e.modify_time, e.id)) if ended else None
        execution = first_completed(found) or latest
    output = execution.run_output if execution is not None else None
    if execution is None or output is None:
        raise CLIError(
            f"job {job_id} has no ended execution with output yet "
            f"(`bacalao job logs --follow {job_id}` follows a running one)"
        )
    write_stdout(tailed(output.stdout, tail))
    write_stderr(tailed(output.stderr, tail))
    if output.stdout_truncated or output.stderr_truncated:
        print_note("(output truncated by the node; `bacalao job get` has all of it)")


_GET_HELP = (
    "Download a job's results into a folder.\n"
    "\n"
    "The folder (default ./job-ID/) receives stdout, stderr, exitCode and one folder per "
    "result path of the task. When several executions published results (Count > 1), each "
    "goes into its own subfolder execution-1/, execution-2/, ... in the order the requester "
    "lists them. An existing, non-empty folder is never overwritten.\n"
)


@app.command("get", help=_GET_HELP)
def get(
    ctx: typer.Context,
    job_id: JobIdArgument,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Where to put the results (default: ./job-ID/).",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    ipfs_connect: Annotated[
        str | None,
        typer.Option(
            "--ipfs-connect",
            envvar="BACALAO_IPFS_API",
            help="RPC API of the IPFS daemon that fetches ipfs results "
            "(default: /ip4/127.0.0.1/tcp/5001).",
            show_default=False,
        ),
    ] = None,
    api_host: ApiHostOption = None,
    api_port: ApiPortOption = None,
    api_token: ApiTokenOption = None,
) -> None:
    with settings(ctx).client(api_host, api_port, api_token) as client:
        written = fetch_results(client, job_id, output_dir, ipfs_api=ipfs_connect)
    write_stdout(f"Results for job {job_id} are in {written}\n")


def fetch_results(
    client: APIClient, job_id: str, output_dir: Path | None, *, ipfs_api: str | None = None
) -> Path:
    """Download every published result of the job; returns the folder they went to.
    ``ipfs_api``: the IPFS daemon that fetches ``ipfs`` results."""
    job = client.get_job(job_id)
    specs = client.results(job.id)
    if not specs:
        if job.state.state_type == JobStateType.COMPLETED:
            raise CLIError(
                f"job {job.id} published no results (its publisher is "
                f"{job.task.publisher.type!r}; use -p local to keep them)"
            )
        if job.terminal:
            raise CLIError(f"job {job.id} is {job.state.state_type.value} and published no results")
        raise CLIError(
            f"job {job.id} has no results yet: it is {job.state.state_type.value} "
            "(results appear when an execution completes)"
        )
    target = output_dir if output_dir is not None else Path.cwd() / f"job-{job.id}"
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CLIError(f"{target} already exists and is not empty; pick another --output-dir")
    with download_progress() as progress:
        if len(specs) == 1:
            download_result(
                specs[0], target, progress=progress, ipfs_api=ipfs_api, verify=client.trust
            )
        else:
            for index, spec in enumerate(specs, start=1):
                download_result(
                    spec,
                    target / f"execution-{index}",
                    progress=progress,
                    ipfs_api=ipfs_api,
                    verify=client.trust,
                )
    return target
