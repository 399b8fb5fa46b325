"""``bacalao node ...``: the nodes the requester knows of."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import ApiHostOption, ApiPortOption, settings
from cli.output import OutputFormat, OutputOption, WideOption, emit
from cli.tables import node_overview, nodes_table

app = typer.Typer(name="node", help="List and describe the network's nodes.", no_args_is_help=True)


@app.command("list")
def list_nodes(
    ctx: typer.Context,
    output: OutputOption = OutputFormat.TABLE,
    wide: WideOption = False,
    api_host: ApiHostOption = None,
    api_port: ApiPortOption = None,
) -> None:
    """List the nodes the requester has heard from, with what they run and have free."""
    with settings(ctx).client(api_host, api_port) as client:
        found = client.nodes()
    emit(output, lambda: [node.to_wire() for node in found], lambda: [nodes_table(found, wide)])


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
) -> None:
    """Show one node: its labels, engines, publishers, storage and capacity."""
    with settings(ctx).client(api_host, api_port) as client:
        node = client.node(node_id)
    emit(output, node.to_wire, lambda: node_overview(node))
