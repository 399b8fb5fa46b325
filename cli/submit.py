"""The end every ``run`` command shares: build the job, submit it where the flags say, follow it.

The waiting and the printing are :func:`cli.wait.submit`'s; this module turns command-line
flags into its options, starts the ``--embedded`` devstack when asked, and exits with the
code the job earned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import typer

from cli.context import settings
from cli.errors import JobSpecError
from cli.jobspec import BuiltJob
from cli.options import SubmitFlags
from cli.wait import RunOptions, submit

EMBEDDED_COMPUTE_NODES = 1


def build_from_flags(build: Callable[[], BuiltJob]) -> BuiltJob:
    """``build()``; a JobSpecError becomes click's usage error (exit 2) naming the option."""
    try:
        return build()
    except JobSpecError as exc:
        hint = f"'{exc.option}'" if exc.option else None
        raise typer.BadParameter(exc.problem, param_hint=hint) from None


def run_job(ctx: typer.Context, built: BuiltJob, flags: SubmitFlags) -> None:
    """Submit ``built`` (or print it, with --dry-run) and follow it as ``flags`` say; raises
    ``typer.Exit`` with the job's exit code when it did not complete."""
    shared = settings(ctx)
    if flags.follow and not flags.wait:
        raise typer.BadParameter(
            "--follow waits for the job to print its output: drop --no-wait",
            param_hint="'--follow'",
        )
    options = RunOptions(
        wait=flags.wait,
        follow=flags.follow,
        id_only=flags.id_only,
        dry_run=flags.dry_run,
        wait_timeout_s=flags.wait_timeout_s,
        poll_interval_s=shared.poll_interval_s,
    )
    api_host, api_port = flags.api_host, flags.api_port
    with contextlib.ExitStack() as resources:
        if flags.embedded and not flags.dry_run:
            from cli.devstack import embedded  # the node code loads only when asked for

            stack = resources.enter_context(embedded(compute_nodes=EMBEDDED_COMPUTE_NODES))
            api_host, api_port = "127.0.0.1", stack.api_port
        client = resources.enter_context(shared.client(api_host, api_port, flags.api_token))
        code = submit(client, built, options)
    if code:
        raise typer.Exit(code)
