"""``bacalao node ...``: the nodes the requester knows of."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import ApiHostOption, ApiPortOption, ApiTokenOption, settings
from cli.options import ShowFlags, with_flag_groups
from cli.output import OutputFormat, OutputOption, emit
from cli.tables import node_overview, nodes_table

app = typer.Typer(name="node", help="List and describe the network's nodes.", no_args_is_help=True)


@app.command("list")
@with_flag_groups
def list_nodes(ctx: typer.Context, *, show: ShowFlags) -> None:
    """List the nodes the requester has heard from, with what they run and have free."""
    with show.client(ctx) as client:
        show.show_items(client.nodes(), nodes_table)


@app.command("describe")
def describe(
    ctx: typer.Context,
    node_id: Annotated[
        str,
        typer.Argument(
            help="The node ID, or a unique prefix of it.", metavar="ID", show_default=False
        ),
    ],
    output: OutputOption = OutputFormat.TABLE,
    api_host: ApiHostOption = None,
    api_port: ApiPortOption = None,
    api_token: ApiTokenOption = None,
) -> None:
    """Show one node: its labels, engines, publishers, storage and capacity."""
    with settings(ctx).client(api_host, api_port, api_token) as client:
        node = client.node(node_id)
    emit(output, node.to_wire, lambda: node_overview(node))
