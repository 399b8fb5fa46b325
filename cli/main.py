"""The ``bacalao`` command line: submit and follow jobs over the requester's REST API.

The app is built by :func:`create_app`, so tests can hand it a client factory (an
``httpx.MockTransport`` behind :class:`~cli.client.APIClient`) and a zero poll interval.
``cli/serve.py``, when present, adds ``serve`` and ``devstack`` through ``register(app)``.
Every :class:`~protocol.errors.BacalaoError` ends as one red line on stderr and exit code 1
(124 for a ``--wait-timeout`` that ran out); bad invocations exit 2, as click decides.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from typer.core import TyperGroup

from cli import docker, jobs, nodes, wasm
from cli.client import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    ENV_API_HOST,
    ENV_API_PORT,
    ENV_API_TOKEN,
    ENV_TLS_CA,
    APIClient,
)
from cli.context import (
    CONNECTION_PANEL,
    DEFAULT_POLL_INTERVAL_S,
    ApiHostOption,
    ApiPortOption,
    ApiTokenOption,
    ClientFactory,
    Settings,
    settings,
)
from cli.errors import APIError, CLIError
from cli.output import OutputFormat, OutputOption, emit, print_error, print_note
from cli.tables import fields_grid
from protocol import __version__
from protocol.errors import BacalaoError
from protocol.node import BuildVersionInfo

_HELP = (
    "Compute over data, the Bacalhau way: run programs next to the data, on a network of "
    "compute nodes.\n"
    "\n"
    "Start a local network with `bacalao devstack`, then try `bacalao wasm run hello.wasm`.\n"
)


class _ReportErrors(TyperGroup):
    """Turns every BacalaoError raised below it into one red line and its exit code (1, or
    the CLIError's own)."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except BacalaoError as exc:
            print_error(str(exc))
            raise typer.Exit(getattr(exc, "exit_code", 1)) from None


def create_app(
    *,
    client_factory: ClientFactory = APIClient,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
) -> typer.Typer:
    """A fresh ``bacalao`` app whose commands reach the requester through ``client_factory``."""
    app = typer.Typer(
        name="bacalao",
        help=_HELP,
        cls=_ReportErrors,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_show_locals=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        api_host: Annotated[
            str,
            typer.Option(
                "--api-host",
                envvar=ENV_API_HOST,
                help="Host of the requester's API, or a full URL such as https://host:1234.",
                rich_help_panel=CONNECTION_PANEL,
            ),
        ] = DEFAULT_API_HOST,
        api_port: Annotated[
            int,
            typer.Option(
                "--api-port",
                envvar=ENV_API_PORT,
                help="Port of the requester's API.",
                min=1,
                max=65535,
                rich_help_panel=CONNECTION_PANEL,
            ),
        ] = DEFAULT_API_PORT,
        api_token: Annotated[
            str | None,
            typer.Option(
                "--api-token",
                envvar=ENV_API_TOKEN,
                show_default=False,
                help="Bearer token for a requester that asks for one (its --api-token).",
                rich_help_panel=CONNECTION_PANEL,
            ),
        ] = None,
        tls_ca: Annotated[
            Path | None,
            typer.Option(
                "--tls-ca",
                envvar=ENV_TLS_CA,
                show_default=False,
                help="PEM certificate of the CA an https:// requester's certificate is "
                "signed by (default: the system's CAs).",
                rich_help_panel=CONNECTION_PANEL,
            ),
        ] = None,
    ) -> None:
        ctx.obj = Settings(
            api_host=api_host,
            api_port=api_port,
            client_factory=client_factory,
            poll_interval_s=poll_interval_s,
            api_token=api_token,
            tls_ca=tls_ca,
        )

    app.command("version")(version)
    app.add_typer(wasm.app, name="wasm")
    app.add_typer(docker.app, name="docker")
    app.add_typer(jobs.app, name="job")
    app.add_typer(nodes.app, name="node")
    _add_node_commands(app)
    return app


def version(
    ctx: typer.Context,
    output: OutputOption = OutputFormat.TABLE,
    api_host: ApiHostOption = None,
    api_port: ApiPortOption = None,
    api_token: ApiTokenOption = None,
) -> None:
    """Show the version of this client and, when it answers, of the requester."""
    client_version = BuildVersionInfo()
    server: BuildVersionInfo | None = None
    problem = ""
    try:
        with settings(ctx).client(api_host, api_port, api_token) as client:
            server = client.version()
    except APIError as exc:
        problem = exc.message

    def rows() -> list[RenderableType]:
        server_text = server.git_version if server is not None else "unknown"
        return [fields_grid([("Client", f"v{__version__}"), ("Server", server_text)])]

    emit(
        output,
        lambda: {
            "ClientVersion": client_version.to_wire(),
            "ServerVersion": server.to_wire() if server is not None else None,
        },
        rows,
    )
    if problem:
        print_note(f"(server version unknown: {problem})", style="dim")


def _unavailable(name: str, problem: str) -> Callable[[], None]:
    def command() -> None:
        raise CLIError(f"`bacalao {name}` is unavailable here: {problem}")

    command.__doc__ = f"Unavailable: {problem}"
    return command


def _add_node_commands(app: typer.Typer) -> None:
    """``serve`` and ``devstack`` come from ``cli/serve.py``, which imports the node code.

    The client commands must keep working when that code cannot load, so any failure to
    import it turns the two commands into ones that say why they are unavailable.
    """
    try:
        serve = importlib.import_module("cli.serve")
    except ModuleNotFoundError as exc:
        if exc.name == "cli.serve":  # a client-only install
            return
        problem = str(exc)
    except Exception as exc:  # a broken node module must not take the client down with it
        problem = f"{type(exc).__name__}: {exc}"
    else:
        register: Callable[[typer.Typer], None] = serve.register
        register(app)
        return
    extra = {"ignore_unknown_options": True, "allow_extra_args": True}
    for name in ("serve", "devstack"):
        app.command(name, context_settings=extra)(_unavailable(name, problem))


app = create_app()


def main() -> None:
    """Console entry point: run the app; a BacalaoError never shows a traceback."""
    try:
        app(prog_name="bacalao")
    except BacalaoError as exc:
        print_error(str(exc))
        sys.exit(getattr(exc, "exit_code", 1))


if __name__ == "__main__":
    main()
