"""``bacalao wasm run``: run a WebAssembly program on the network."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from cli.context import CONNECTION_PANEL, ApiHostOption, ApiPortOption, settings
from cli.errors import JobSpecError
from cli.jobspec import DEFAULT_ENTRYPOINT, DEFAULT_PUBLISHER, WasmRunSpec, build_wasm_job
from cli.wait import (
    DEFAULT_WAIT_TIMEOUT_S,
    DryRunOption,
    IdOnlyOption,
    RunOptions,
    WaitOption,
    WaitTimeoutOption,
    submit,
)

DATA = "Data"
PROGRAM = "Program"
RESOURCES = "Resources"
PLACEMENT = "Placement"

app = typer.Typer(
    name="wasm",
    help="Run WebAssembly (WASI) programs on the network.",
    no_args_is_help=True,
)

_RUN_HELP = (
    "Run a WebAssembly program on a compute node and print what it wrote to stdout.\n"
    "\n"
    "MODULE is a local .wasm file, a .wat file (compiled here first), or a URL a compute node "
    "can fetch (https://, s3://, ipfs://). A local module travels inside the job, as "
    "/app/NAME.wasm. ARGS are passed to the program; put them after -- when they start with a "
    "dash.\n"
    "\n"
    "Examples:\n"
    "\n"
    "  bacalao wasm run hello.wasm\n"
    "\n"
    "  bacalao wasm run -i /data/in.csv:/inputs/in.csv -o outputs:/outputs count.wasm -- -v\n"
    "\n"
    "  bacalao wasm run --labels team=ml --constraints 'region in (eu,us)' tool.wat --dry-run\n"
    "\n"
    "By default the command waits for the job and exits 0 when it completed, 1 when it failed "
    "or was stopped (the reason goes to stderr).\n"
)


@app.command("run", help=_RUN_HELP, no_args_is_help=True)
def run(
    ctx: typer.Context,
    module: Annotated[
        str,
        typer.Argument(
            help="The program: a .wasm or .wat file, or a URL.",
            metavar="MODULE",
            show_default=False,
        ),
    ],
    args: Annotated[
        list[str] | None,
        typer.Argument(help="Arguments for the program.", metavar="ARGS", show_default=False),
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="Data to mount, SRC[:DST] with DST defaulting to /inputs. SRC is "
            "/abs/path or file:///abs/path (on the compute node), http(s)://..., data:..., "
            "s3://bucket/key or ipfs://CID. Long form: src=URI,dst=PATH,opt=readwrite=true. "
            "Repeatable.",
            rich_help_panel=DATA,
            show_default=False,
        ),
    ] = None,
    outputs: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            "-o",
            help="A folder to publish as a result, NAME:PATH (e.g. outputs:/outputs). Repeatable.",
            rich_help_panel=DATA,
            show_default=False,
        ),
    ] = None,
    publisher: Annotated[
        str,
        typer.Option(
            "--publisher",
            "-p",
            help="Where results go: local (kept on the compute node, fetched by "
            "`bacalao job get`), noop (discarded), ipfs, or s3://bucket/prefix.",
            rich_help_panel=DATA,
        ),
    ] = DEFAULT_PUBLISHER,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            help="An environment variable for the program, KEY=VALUE. Repeatable.",
            rich_help_panel=PROGRAM,
            show_default=False,
        ),
    ] = None,
    entry_point: Annotated[
        str,
        typer.Option(
            "--entry-point", help="The exported function to call.", rich_help_panel=PROGRAM
        ),
    ] = DEFAULT_ENTRYPOINT,
    count: Annotated[
        int,
        typer.Option(
            "--count", help="How many nodes run the program.", min=1, rich_help_panel=PLACEMENT
        ),
    ] = 1,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--labels",
            "-l",
            help="Labels of the job, k=v; repeatable or comma-separated.",
            rich_help_panel=PLACEMENT,
            show_default=False,
        ),
    ] = None,
    constraints: Annotated[
        list[str] | None,
        typer.Option(
            "--constraints",
            help="Which nodes may run the job, by their labels: 'region=eu,zone in (a,b)', "
            "'gpu', '!spot', 'cores>4'. All must hold.",
            rich_help_panel=PLACEMENT,
            show_default=False,
        ),
    ] = None,
    selectors: Annotated[
        list[str] | None,
        typer.Option(
            "--selector",
            "-s",
            help="Same as --constraints (Bacalhau's older name), e.g. -s region=eu.",
            rich_help_panel=PLACEMENT,
            show_default=False,
        ),
    ] = None,
    timeout_s: Annotated[
        int,
        typer.Option(
            "--timeout",
            help="Seconds the program may run (0: the node's default).",
            min=0,
            rich_help_panel=RESOURCES,
        ),
    ] = 0,
    memory: Annotated[
        str,
        typer.Option(
            "--memory", help="Memory to reserve, e.g. 64Mb or 1Gi.", rich_help_panel=RESOURCES
        ),
    ] = "",
    cpu: Annotated[
        str,
        typer.Option("--cpu", help="CPU to reserve, e.g. 500m or 2.", rich_help_panel=RESOURCES),
    ] = "",
    wait: WaitOption = True,
    id_only: IdOnlyOption = False,
    wait_timeout_s: WaitTimeoutOption = DEFAULT_WAIT_TIMEOUT_S,
    dry_run: DryRunOption = False,
    api_host: ApiHostOption = None,
    api_port: ApiPortOption = None,
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded",
            help="Run on a throw-away devstack inside this command (memory bus, SQLite job "
            "store, local publisher): no server or service needed.",
            rich_help_panel=CONNECTION_PANEL,
        ),
    ] = False,
) -> None:
    spec = WasmRunSpec(
        module=module,
        args=tuple(args or ()),
        inputs=tuple(inputs or ()),
        env=tuple(env or ()),
        entry_point=entry_point,
        count=count,
        timeout_s=timeout_s,
        memory=memory,
        cpu=cpu,
        outputs=tuple(outputs or ()),
        publisher=publisher,
        labels=tuple(labels or ()),
        constraints=tuple(constraints or ()),
        selectors=tuple(selectors or ()),
    )
    try:
        built = build_wasm_job(spec)
    except JobSpecError as exc:
        hint = f"'{exc.option}'" if exc.option else None
        raise typer.BadParameter(exc.problem, param_hint=hint) from None
    shared = settings(ctx)
    options = RunOptions(
        wait=wait,
        id_only=id_only,
        dry_run=dry_run,
        wait_timeout_s=wait_timeout_s,
        poll_interval_s=shared.poll_interval_s,
    )
    with contextlib.ExitStack() as resources:
        if embedded:
            from cli.devstack import embedded as embedded_stack

            stack = resources.enter_context(embedded_stack(compute_nodes=1))
            api_host, api_port = "127.0.0.1", stack.api_port
        client = resources.enter_context(shared.client(api_host, api_port))
        code = submit(client, built, options)
    if code:
        raise typer.Exit(code)
