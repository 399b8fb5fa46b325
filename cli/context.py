"""What every command shares: where the requester is, how to reach it, how often to poll.

The root callback puts a :class:`Settings` on the click context; commands take it with
:func:`settings` and open a client with :meth:`Settings.client`, letting their own
``--api-host/--api-port/--api-token`` win over the ones given before the command name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

import typer

from cli.client import APIClient


class ClientFactory(Protocol):
    def __call__(self, host: str, port: int, *, tls_ca: Path | None = None) -> APIClient: ...


DEFAULT_POLL_INTERVAL_S = 0.5
CONNECTION_PANEL = "Connection"

ApiHostOption = Annotated[
    str | None,
    typer.Option(
        "--api-host",
        help="Host of the requester's API (or a full URL such as https://host:1234). "
        "Overrides the value given before the command and BACALAO_API_HOST.",
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
    ),
]
ApiTokenOption = Annotated[
    str | None,
    typer.Option(
        "--api-token",
        help="Bearer token for a requester that asks for one. Overrides the value given "
        "before the command and BACALAO_API_TOKEN.",
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
    ),
]
ApiPortOption = Annotated[
    int | None,
    typer.Option(
        "--api-port",
        help="Port of the requester's API. Overrides the value given before the command "
        "and BACALAO_API_PORT.",
        min=1,
        max=65535,
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
    ),
]


@dataclass(frozen=True)
class Settings:
    api_host: str
    api_port: int
    client_factory: ClientFactory
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    api_token: str | None = None
    tls_ca: Path | None = None  # the CA a requester's HTTPS certificate must chain to

    def client(
        self,
        api_host: str | None = None,
        api_port: int | None = None,
        api_token: str | None = None,
    ) -> APIClient:
        client = self.client_factory(
            api_host or self.api_host, api_port or self.api_port, tls_ca=self.tls_ca
        )
        client.authenticate(api_token or self.api_token)
        return client


def settings(ctx: typer.Context) -> Settings:
    """The Settings the root callback stored (found on the nearest context that has them)."""
    found = ctx.find_object(Settings)
    if found is None:  # a command invoked without the root app, which only tests do
        raise RuntimeError("bacalao commands must run under the bacalao app")
    return found
