"""``bacalao docker run``: run a container image on the network, as ``bacalhau docker run``."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.jobspec import DockerRunSpec, build_docker_job
from cli.options import (
    PROGRAM,
    RESOURCES,
    WAITS_HELP,
    SubmitFlags,
    TaskFlags,
    repeatable,
    with_flag_groups,
)
from cli.submit import build_from_flags, run_job
from protocol.job import NetworkType

app = typer.Typer(
    name="docker",
    help="Run container images on the network.",
    no_args_is_help=True,
)

_RUN_HELP = (
    "Run a container image on a compute node and print what it wrote to stdout.\n"
    "\n"
    "IMAGE is pulled by the compute node (NAME[:TAG|@DIGEST]). CMD and its ARGS replace the "
    "image's CMD; --entrypoint replaces its ENTRYPOINT. Put the command after -- when any of "
    "its words starts with a dash. A folder outputs:/outputs is published unless -o names "
    "that name or path.\n"
    "\n"
    "Examples:\n"
    "\n"
    "  bacalao docker run ubuntu:24.04 echo hello\n"
    "\n"
    "  bacalao docker run -i file:///data/logs:/input -o apples:/output_folder busybox:1 "
    "-- sh -c 'ls /input > /output_folder/file.txt'\n"
    "\n"
    "  bacalao docker run --cpu 500m --memory 1Gi --network full -e MODE=fast python:3.12 "
    "-- python -c 'print(42)' --dry-run\n"
    "\n" + WAITS_HELP
)


@app.command("run", help=_RUN_HELP, no_args_is_help=True)
@with_flag_groups
def run(
    ctx: typer.Context,
    image: Annotated[
        str,
        typer.Argument(help="The image, NAME[:TAG|@DIGEST].", metavar="IMAGE", show_default=False),
    ],
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="The command and its arguments (the image's CMD when not given).",
            metavar="CMD",
            show_default=False,
        ),
    ] = None,
    entrypoint: Annotated[
        list[str] | None,
        repeatable(
            "--entrypoint",
            help="Replace the image's ENTRYPOINT; words split at commas (sh,-c) or repeated.",
            panel=PROGRAM,
        ),
    ] = None,
    workdir: Annotated[
        str,
        typer.Option(
            "--workdir",
            "-w",
            help="Working directory inside the container (default: the image's WORKDIR).",
            rich_help_panel=PROGRAM,
            show_default=False,
        ),
    ] = "",
    disk: Annotated[
        str,
        typer.Option("--disk", help="Disk to reserve, e.g. 10Gb.", rich_help_panel=RESOURCES),
    ] = "",
    gpu: Annotated[
        str,
        typer.Option("--gpu", help="GPUs to reserve, e.g. 1.", rich_help_panel=RESOURCES),
    ] = "",
    network: Annotated[
        NetworkType,
        typer.Option(
            "--network",
            help="Network access: None (the default), Host, Full, or HTTP to the --domain's.",
            case_sensitive=False,
            rich_help_panel=RESOURCES,
        ),
    ] = NetworkType.NONE,
    domains: Annotated[
        list[str] | None,
        repeatable(
            "--domain", help="A domain the job may reach with --network http.", panel=RESOURCES
        ),
    ] = None,
    *,
    task: TaskFlags,
    how: SubmitFlags,
) -> None:
    spec = DockerRunSpec(
        image=image,
        args=tuple(args or ()),
        entrypoint=tuple(entrypoint or ()),
        workdir=workdir,
        **task.spec_values(),
        disk=disk,
        gpu=gpu,
        network=network.value,
        domains=tuple(domains or ()),
    )
    run_job(ctx, build_from_flags(lambda: build_docker_job(spec)), how)
