"""A job's output printed as its program writes it: ``job logs --follow`` and ``run --follow``.

The requester streams NDJSON (``GET /jobs/{id}/logs?follow=true``, see
:mod:`requester.log_buffer` for the lines); stdout text goes to stdout and stderr text to
stderr as each line arrives, so a pipe downstream sees the program's output unmixed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cli.client import APIClient
from cli.errors import APIError, CLIError, WaitTimeoutError
from cli.output import write_stderr, write_stdout
from protocol.logs import STDERR, tail_of

STDERR_TYPE = 2  # Bacalhau's ExecutionLogTypeSTDERR


@dataclass(frozen=True)
class Followed:
    """What a follow saw: the execution and its node (empty if none ran)."""

    execution_id: str = ""
    node_id: str = ""


def follow_logs(
    client: APIClient,
    job_id: str,
    *,
    execution_id: str = "",
    tail: int = 0,
    deadline_s: float | None = None,
    on_execution: Callable[[Followed], None] = lambda followed: None,
    clock: Callable[[], float] = time.monotonic,
) -> Followed:
    """Print the output of the job's running execution (or ``execution_id``) until it ends.
    CLIError when the requester cannot follow it; WaitTimeoutError once ``deadline_s``
    (of ``clock``) passes (the requester writes a line at least every 10 s, so it is seen)."""
    followed = Followed()
    lines = client.job_logs(job_id, execution_id=execution_id, follow=True, tail=tail)
    for line in lines:
        if deadline_s is not None and clock() >= deadline_s:
            raise WaitTimeoutError(
                f"job {job_id} is still running after --wait-timeout; it keeps running: "
                f"follow it with `bacalao job logs --follow {job_id}`"
            )
        event = _event(line, client.base_url)
        if "Error" in event:
            raise CLIError(f"cannot follow the logs of job {job_id}: {event['Error']}")
        if "NodeID" in event:
            followed = Followed(str(event.get("ExecutionID", "")), str(event["NodeID"]))
            on_execution(followed)
        elif "Line" in event:
            text = str(event["Line"])
            stream = event.get("Stream") or ("stderr" if event.get("Type") == STDERR_TYPE else "")
            (write_stderr if stream == STDERR else write_stdout)(text)
        elif event.get("End"):
            return followed
    raise APIError(
        f"the requester at {client.base_url} ended the log stream of job {job_id} before "
        "the execution ended"
    )


def tailed(text: str, lines: int) -> str:
    """The last ``lines`` lines of ``text`` (all of it for 0), as the requester counts them."""
    return tail_of(text.encode(), lines).decode("utf-8", "replace") if lines else text


def _event(line: str, where: str) -> dict[str, Any]:
    if not line.strip():
        return {}
    try:
        event = json.loads(line)
    except ValueError:
        raise APIError(f"the requester at {where} sent a log line that is not JSON") from None
    return event if isinstance(event, dict) else {}
