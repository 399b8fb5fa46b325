"""Options several commands share, declared once as groups (dataclasses of typer options).

``TaskFlags`` (data, environment, placement, limits: ``wasm run``, ``docker run``),
``SubmitFlags`` (wait, dry run, where to submit: every ``run``) and ``ShowFlags`` (output
format and requester: the commands that list and describe). A command takes a whole group as
one keyword-only parameter and is wrapped in :func:`with_flag_groups`, which shows typer one
option per field of the group and hands the command the filled-in group::

    @app.command("run")
    @with_flag_groups
    def run(ctx: typer.Context, image: ImageArgument, *, task: TaskFlags, how: SubmitFlags):
        ...
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from rich.console import RenderableType

from cli.client import APIClient
from cli.context import CONNECTION_PANEL, ApiHostOption, ApiPortOption, ApiTokenOption, settings
from cli.jobspec import DEFAULT_PUBLISHER
from cli.output import OutputFormat, OutputOption, WideOption, emit
from cli.wait import DEFAULT_WAIT_TIMEOUT_S
from protocol.wire import WireModel

DATA = "Data"
PROGRAM = "Program"
RESOURCES = "Resources"
PLACEMENT = "Placement"
RUN_PANEL = "Submission"
W = TypeVar("W", bound=WireModel)
WAITS_HELP = (
    "By default the command waits for the job and exits 0 when it completed, 1 when it failed "
    "or was stopped (the reason goes to stderr).\n"
)


def repeatable(*names: str, help: str, panel: str) -> Any:
    """A typer option for a ``list[str] | None`` that may be given several times."""
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False)


@dataclass(frozen=True)
class TaskFlags:
    """Data, environment, placement and limits: what ``wasm run`` and ``docker run`` share."""

    inputs: Annotated[
        list[str] | None,
        repeatable(
            "--input",
            "-i",
            help="Data to mount, SRC[:DST] with DST defaulting to /inputs. SRC is "
            "/abs/path or file:///abs/path (on the compute node), http(s)://..., data:..., "
            "s3://bucket/key or ipfs://CID. Long form: src=URI,dst=PATH,opt=readwrite=true. "
            "Repeatable.",
            panel=DATA,
        ),
    ] = None
    outputs: Annotated[
        list[str] | None,
        repeatable(
            "--output",
            "-o",
            help="A folder to publish as a result, NAME:PATH (e.g. outputs:/outputs). Repeatable.",
            panel=DATA,
        ),
    ] = None
    publisher: Annotated[
        str,
        typer.Option(
            "--publisher",
            "-p",
            help="Where results go: local (kept on the compute node, fetched by "
            "`bacalao job get`), noop (discarded), ipfs, or s3://bucket/key with options "
            "opt=endpoint=URL, opt=region=R, opt=compress=true (one .tar.gz), e.g. "
            "s3://results/{jobID},opt=compress=true.",
            rich_help_panel=DATA,
        ),
    ] = DEFAULT_PUBLISHER
    env: Annotated[
        list[str] | None,
        repeatable(
            "--env",
            "-e",
            help="An environment variable for the program, KEY=VALUE. Repeatable.",
            panel=PROGRAM,
        ),
    ] = None
    count: Annotated[
        int,
        typer.Option(
            "--count", help="How many nodes run the program.", min=1, rich_help_panel=PLACEMENT
        ),
    ] = 1
    verify: Annotated[
        str,
        typer.Option(
            "--verify",
            help="Compare the results of the --count runs and keep the one most of them agree "
            "on: deterministic (the others' nodes lose reputation).",
            rich_help_panel=PLACEMENT,
        ),
    ] = ""
    labels: Annotated[
        list[str] | None,
        repeatable(
            "--labels",
            "-l",
            help="Labels of the job, k=v; repeatable or comma-separated.",
            panel=PLACEMENT,
        ),
    ] = None
    constraints: Annotated[
        list[str] | None,
        repeatable(
            "--constraints",
            help="Which nodes may run the job, by their labels: 'region=eu,zone in (a,b)', "
            "'gpu', '!spot', 'cores>4'. All must hold.",
            panel=PLACEMENT,
        ),
    ] = None
    selectors: Annotated[
        list[str] | None,
        repeatable(
            "--selector",
            "-s",
            help="Same as --constraints (Bacalhau's older name), e.g. -s region=eu.",
            panel=PLACEMENT,
        ),
    ] = None
    timeout_s: Annotated[
        int,
        typer.Option(
            "--timeout",
            help="Seconds the program may run (0: the node's default).",
            min=0,
            rich_help_panel=RESOURCES,
        ),
    ] = 0
    memory: Annotated[
        str,
        typer.Option(
            "--memory", help="Memory to reserve, e.g. 64Mb or 1Gi.", rich_help_panel=RESOURCES
        ),
    ] = ""
    cpu: Annotated[
        str,
        typer.Option("--cpu", help="CPU to reserve, e.g. 500m or 2.", rich_help_panel=RESOURCES),
    ] = ""

    def spec_values(self) -> dict[str, Any]:
        """The values as keyword arguments of :class:`cli.jobspec.TaskSpec` (None -> ())."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {name: _as_spec_value(value) for name, value in values.items()}


def _as_spec_value(value: object) -> object:
    """A repeatable option's list (None when not given) as a tuple; other values as they are."""
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class SubmitFlags:
    """How to submit and follow a job: shared by ``job run``, ``wasm run`` and ``docker run``."""

    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait for the job to finish, then print its output (the default), or return "
            "as soon as the requester has accepted it.",
            rich_help_panel=RUN_PANEL,
        ),
    ] = True
    id_only: Annotated[
        bool,
        typer.Option(
            "--id-only",
            help="Print only the job ID on stdout, for scripts: "
            "ID=$(bacalao ... --id-only). Still waits unless --no-wait is given, and the exit "
            "code still says whether the job completed.",
            rich_help_panel=RUN_PANEL,
        ),
    ] = False
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Print the program's output as it writes it (stdout on stdout, stderr on "
            "stderr), streamed from the compute node, instead of once the job has ended. With "
            "--count N, one execution's output is followed.",
            rich_help_panel=RUN_PANEL,
        ),
    ] = False
    wait_timeout_s: Annotated[
        float,
        typer.Option(
            "--wait-timeout",
            help="Seconds to wait for the job before giving up on it (it keeps running; "
            "exit code 124).",
            min=0,
            rich_help_panel=RUN_PANEL,
        ),
    ] = DEFAULT_WAIT_TIMEOUT_S
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the job as YAML (a file `bacalao job run` accepts) instead of "
            "submitting it.",
            rich_help_panel=RUN_PANEL,
        ),
    ] = False
    api_host: ApiHostOption = None
    api_port: ApiPortOption = None
    api_token: ApiTokenOption = None
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded",
            help="Run on a throw-away devstack inside this command (memory bus, SQLite job "
            "store, local publisher): no server or service needed.",
            rich_help_panel=CONNECTION_PANEL,
        ),
    ] = False


@dataclass(frozen=True)
class ShowFlags:
    """How a command that shows things prints them, and which requester it asks."""

    output: OutputOption = OutputFormat.TABLE
    wide: WideOption = False
    api_host: ApiHostOption = None
    api_port: ApiPortOption = None
    api_token: ApiTokenOption = None

    def client(self, ctx: typer.Context) -> APIClient:
        return settings(ctx).client(self.api_host, self.api_port, self.api_token)

    def show_items(
        self, items: Sequence[W], table: Callable[[Sequence[W], bool], RenderableType]
    ) -> None:
        """``items`` as a table, or as the API's JSON/YAML list."""
        emit(
            self.output,
            lambda: [item.to_wire() for item in items],
            lambda: [table(items, self.wide)],
        )


FLAG_GROUPS: tuple[type, ...] = (TaskFlags, SubmitFlags, ShowFlags)


def _group_parameters(group: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(group, include_extras=True)
    return [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=field.default,
            annotation=hints[field.name],
        )
        for field in dataclasses.fields(group)
    ]


def with_flag_groups(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` as typer should see it: each parameter typed with a group of
    :data:`FLAG_GROUPS` becomes that group's options; calls get the group back, filled in."""
    signature = inspect.signature(command, eval_str=True)
    own = [param for param in signature.parameters.values() if param.annotation not in FLAG_GROUPS]
    groups = {
        param.name: param.annotation
        for param in signature.parameters.values()
        if param.annotation in FLAG_GROUPS
    }
    added = [param for group in groups.values() for param in _group_parameters(group)]
    clashes = {param.name for param in own} & {param.name for param in added}
    if clashes:
        raise TypeError(f"{command.__name__}: parameters {sorted(clashes)} clash with a group")

    @functools.wraps(command)
    def typer_command(**values: Any) -> None:
        for name, group in groups.items():
            fields = {field.name: values.pop(field.name) for field in dataclasses.fields(group)}
            values[name] = group(**fields)
        command(**values)

    parameters = [*own, *added]
    typer_command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    typer_command.__annotations__ = {param.name: param.annotation for param in parameters}
    return typer_command
