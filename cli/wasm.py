"""``bacalao wasm run``: run a WebAssembly program on the network."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.jobspec import DEFAULT_ENTRYPOINT, WasmRunSpec, build_wasm_job
from cli.options import PROGRAM, WAITS_HELP, SubmitFlags, TaskFlags, with_flag_groups
from cli.submit import build_from_flags, run_job

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
    "\n" + WAITS_HELP
)


@app.command("run", help=_RUN_HELP, no_args_is_help=True)
@with_flag_groups
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
    entry_point: Annotated[
        str,
        typer.Option(
            "--entry-point", help="The exported function to call.", rich_help_panel=PROGRAM
        ),
    ] = DEFAULT_ENTRYPOINT,
    *,
    task: TaskFlags,
    how: SubmitFlags,
) -> None:
    spec = WasmRunSpec(
        module=module, args=tuple(args or ()), entry_point=entry_point, **task.spec_values()
    )
    run_job(ctx, build_from_flags(lambda: build_wasm_job(spec)), how)
