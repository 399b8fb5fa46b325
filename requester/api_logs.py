"""``GET /api/v1/orchestrator/jobs/{id}/logs``: what a job's program writes, as it writes it.

Bacalhau serves this path as a WebSocket. Here it is chunked HTTP, an NDJSON stream
(``application/x-ndjson``: one JSON object per line, :mod:`requester.log_buffer` says which).
The stream goes one way (the client says nothing after its request), so a WebSocket's second
direction buys nothing, and plain HTTP keeps what every other route has: the bearer tokens,
TLS, errors in Bacalhau's JSON shape before the stream starts, proxies, ``curl -N``, and
httpx's ``stream()`` in the CLI, with no WebSocket stack on either side (uvicorn runs with
``ws="none"``). A line ``{}`` after ``KEEPALIVE_S`` without news keeps a quiet stream from
timing out in clients and proxies.

Query parameters: ``execution_id`` (one of the job's executions, or a unique prefix of its ID;
default: the one that runs, else the one ``job logs`` shows), ``follow`` (true: until the
execution ends; false, the default: what there is now), ``tail`` (only the last N lines of
each stream; 0, the default: all of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from protocol.errors import NotFoundError, StateTransitionError, ValidationError
from protocol.execution import Execution
from protocol.logs import MAX_TAIL_LINES
from requester.api_errors import AmbiguousIDError, error_response
from requester.api_query import parse_bool, parse_int, shown
from requester.api_schema import answers
from requester.log_session import LogSession
from requester.logs import FollowRefusedError, LogRelay
from requester.service import OrchestratorService
from requester.store import Store

LOGS = "/api/v1/orchestrator/jobs/{job_id}/logs"
NDJSON = "application/x-ndjson"
KEEPALIVE_S = 10.0

Text = Annotated[str | None, Query()]


def _responses() -> dict[int | str, dict[str, Any]]:
    documented = answers("GetJobResponse")
    stream = {"schema": {"type": "object", "description": "one JSON object per line"}}
    documented[200] = {"description": "NDJSON, one event per line", "content": {NDJSON: stream}}
    documented[503] = {**documented["4XX"], "description": "too many followers: try later"}
    return documented


def logs_router(service: OrchestratorService, relay: LogRelay | None) -> APIRouter:
    router = APIRouter()

    @router.get(LOGS, response_model=None, responses=_responses())
    async def job_logs(
        job_id: str, execution_id: Text = None, follow: Text = None, tail: Text = None
    ) -> StreamingResponse | JSONResponse:
        following = parse_bool(follow, "follow")
        tail_lines = parse_int(tail, "tail", maximum=MAX_TAIL_LINES)
        job = await run_in_threadpool(service.store.get_job, job_id)
        executions = await run_in_threadpool(service.store.executions, job.id)
        wanted = match_execution(executions, execution_id, job.id)
        if relay is None:
            raise NotFoundError("this requester does not serve logs")
        asked = [e for e in executions if e.id == wanted] if wanted else executions
        owner = await run_in_threadpool(followed_elsewhere, service.store, job.id, asked)
        if owner:
            # A compute node streams a running execution's output only to the requester
            # that asked for it; an ended one's stored output any requester serves.
            raise StateTransitionError(
                f"job {job.id} runs for requester {owner}: ask its API for the logs of a"
                " running execution"
            )
        try:
            session = await run_in_threadpool(
                lambda: relay.open(job.id, wanted, follow=following, tail_lines=tail_lines)
            )
        except FollowRefusedError as exc:
            return error_response(503, str(exc))
        return StreamingResponse(ndjson(session), media_type=NDJSON)

    return router


def followed_elsewhere(store: Store, job_id: str, executions: Sequence[Execution]) -> str:
    """The other requester a job is followed by, on a store several requesters share, when
    one of ``executions`` (those whose logs are asked for) is live: "" when the job is this
    one's or nobody's, or they all ended (their stored output any requester serves)."""
    mine = store.lease_owner
    if not mine or all(execution.state.terminal for execution in executions):
        return ""
    owner = store.leases.owner(job_id)
    return owner if owner and owner != mine else ""


def match_execution(executions: Sequence[Execution], given: str | None, job_id: str) -> str | None:
    """The ID of the execution ``given`` names: its ID or a unique prefix (None: none given)."""
    wanted = (given or "").strip()
    if not wanted:
        return None
    if any(execution.id == wanted for execution in executions):
        return wanted
    matches = [execution.id for execution in executions if execution.id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise AmbiguousIDError(
            "execution_id", f"{shown(wanted)!r} matches {len(matches)} executions of {job_id}"
        )
    raise ValidationError("execution_id", f"job {job_id} has no execution {shown(wanted)!r}")


async def ndjson(session: LogSession) -> AsyncIterator[bytes]:
    """The session's events as NDJSON lines, as they come; the session closes with it."""
    loop = asyncio.get_running_loop()
    news = asyncio.Event()

    def wake() -> None:  # any thread; a closed loop means nobody reads any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(news.set)

    session.on_news(wake)
    try:
        while True:
            news.clear()
            events, over = session.take()
            if events:
                yield b"".join(_line(event.to_wire()) for event in events)
            if over:
                return
            if not events:
                try:
                    await asyncio.wait_for(news.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield b"{}\n"
    finally:
        session.close()


def _line(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
