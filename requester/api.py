"""The requester's HTTP API: Bacalhau v1 ``/api/v1/orchestrator/...`` and ``/api/v1/agent/...``.

Handlers only translate: read the request (:mod:`requester.api_query`), call the
:class:`~requester.service.OrchestratorService` or its job store, and write Bacalhau's JSON
(``to_wire()``). Errors are answered by :mod:`requester.api_errors`.

Where ``bacalhau-apiclient`` 1.4.1 reads keys that Bacalhau's server never wrote (the
swagger spec it was generated from lowercased them), the answer carries both spellings, so
that client, Go's case-insensitive decoder and ``bacalao``'s own client all read it:
``nodes``/``node`` beside Bacalhau's ``Nodes``/``Node``, and the NodeInfo and
BuildVersionInfo fields inline (as Bacalhau embeds them) beside ``NodeInfo``/``Version``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, ParamSpec

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry

from protocol import __version__
from protocol.metrics import metrics_endpoint
from protocol.states import ExecutionStateType
from requester.api_auth import BearerTokens
from requester.api_body import parse_put_job, read_body
from requester.api_dashboard import install_dashboard
from requester.api_errors import install_error_handlers
from requester.api_logs import logs_router
from requester.api_nodes import find_node, node_query, select_nodes
from requester.api_query import (
    history_event_type,
    listing,
    named_param,
    order_executions,
    page,
    parse_bool,
    parse_include,
    parse_int,
    parse_label_selector,
    parse_namespace,
    since_ns,
)
from requester.api_schema import PUT_JOB_BODY, answers, install_openapi
from requester.logs import LogRelay
from requester.service import OrchestratorService

JOBS = "/api/v1/orchestrator/jobs"
NODES = "/api/v1/orchestrator/nodes"
AGENT = "/api/v1/agent"

P = ParamSpec("P")

Text = Annotated[str | None, Query()]
Texts = Annotated[list[str] | None, Query()]


def answers_json(handler: Callable[P, dict[str, Any]]) -> Callable[P, JSONResponse]:
    """Encode the handler's body with ``json`` directly. A dict returned to FastAPI goes
    through ``jsonable_encoder`` first, which cost more than the rest of a list request
    together (12 of 20 ms for a page of 100 jobs); these bodies are JSON-ready already
    (``to_wire()``). FastAPI reads the handler's parameters through ``__wrapped__``."""

    @functools.wraps(handler)
    def encoded(*args: P.args, **kwargs: P.kwargs) -> JSONResponse:
        return JSONResponse(handler(*args, **kwargs))

    return encoded


def create_app(
    service: OrchestratorService,
    tokens: Sequence[str] = (),
    metrics: CollectorRegistry | None = None,
) -> FastAPI:
    """The API; with ``tokens``, only requests bearing one of them are served
    (:mod:`requester.api_auth`); with ``metrics``, ``GET /metrics`` answers them."""
    app = FastAPI(title="bacalao requester API", version=__version__)
    if tokens:
        app.add_middleware(BearerTokens, tokens=tokens)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(_jobs_router(service))
    app.include_router(_nodes_router(service))
    app.include_router(_agent_router(service))
    relay = getattr(service, "logs", None)  # an Orchestrator follows logs; a test double may not
    app.include_router(logs_router(service, relay if isinstance(relay, LogRelay) else None))
    if metrics is not None:
        app.add_route("/metrics", metrics_endpoint(metrics), ["GET"], include_in_schema=False)
    install_dashboard(app)  # GET /dashboard/: the web page over this API
    return app


def _jobs_router(service: OrchestratorService) -> APIRouter:
    router = APIRouter()
    # Submissions take turns on the store's one writer anyway: one thread of their own writes
    # them back to back, where Starlette's pool would wake a thread per request to wait on the
    # store's lock and the GIL (a third of a PUT's CPU). Its one thread idles between PUTs.
    submitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-submit")

    async def submit(request: Request) -> dict[str, Any]:
        job = parse_put_job(await read_body(request))
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(submitter, service.submit, job)
        return {
            "JobID": result.job_id,
            "EvaluationID": result.evaluation_id,
            "Warnings": list(result.warnings),
        }

    async def put_job_route(request: Request) -> JSONResponse:
        return JSONResponse(await submit(request))

    # PUT is served by a plain Starlette route, matched first: the same middleware and error
    # handlers, without FastAPI's per-request parameter and response machinery (it has
    # neither parameters nor a response model), which cost as much as reading the job. The
    # FastAPI route below is never reached: it keeps PUT /jobs in the OpenAPI schema.
    router.add_route(JOBS, put_job_route, methods=["PUT", "POST"], include_in_schema=False)

    @router.put(
        JOBS, response_model=None, openapi_extra=PUT_JOB_BODY, responses=answers("PutJobResponse")
    )
    async def put_job(request: Request) -> dict[str, Any]:
        return await submit(request)

    @router.post(
        JOBS, response_model=None, openapi_extra=PUT_JOB_BODY, responses=answers("PutJobResponse")
    )
    async def post_job(request: Request) -> dict[str, Any]:
        return await submit(request)

    @router.get(JOBS, response_model=None, responses=answers("ListJobsResponse"))
    @answers_json
    def list_jobs(
        namespace: Text = None,
        limit: Text = None,
        next_token: Text = None,
        order_by: Text = None,
        reverse: Text = None,
        labels: Texts = None,
    ) -> dict[str, Any]:
        jobs, token = service.store.list_jobs(
            namespace=parse_namespace(namespace),
            labels=parse_label_selector(labels or []),
            limit=parse_int(limit, "limit"),
            next_token=next_token or "",
            order_by=order_by or "created_at",
            reverse=parse_bool(reverse, "reverse"),
        )
        return listing((job.to_wire() for job in jobs), token)

    @router.get(JOBS + "/{job_id}", response_model=None, responses=answers("GetJobResponse"))
    @answers_json
    def get_job(job_id: str, include: Texts = None, limit: Text = None) -> dict[str, Any]:
        job = service.store.get_job(job_id)
        wanted = parse_include(include or [])
        count = parse_int(limit, "limit")
        body: dict[str, Any] = {"Job": job.to_wire()}
        if "history" in wanted:
            entries, token = page(service.store.history(job.id), limit=count, next_token="")
            body["History"] = listing((entry.to_wire() for entry in entries), token)
        if "executions" in wanted:
            runs, token = page(service.store.executions(job.id), limit=count, next_token="")
            body["Executions"] = listing((run.to_wire() for run in runs), token)
        return body

    @router.delete(JOBS + "/{job_id}", response_model=None, responses=answers("StopJobResponse"))
    @answers_json
    def stop_job(job_id: str, reason: Text = None) -> dict[str, Any]:
        job = service.store.get_job(job_id)
        return {"EvaluationID": service.stop(job.id, reason or "")}

    @router.get(
        JOBS + "/{job_id}/executions",
        response_model=None,
        responses=answers("ListJobExecutionsResponse"),
    )
    @answers_json
    def job_executions(
        job_id: str,
        order_by: Text = None,
        reverse: Text = None,
        limit: Text = None,
        next_token: Text = None,
    ) -> dict[str, Any]:
        job = service.store.get_job(job_id)
        ordered = order_executions(
            service.store.executions(job.id), order_by, parse_bool(reverse, "reverse")
        )
        runs, token = page(ordered, limit=parse_int(limit, "limit"), next_token=next_token or "")
        return listing((run.to_wire() for run in runs), token)

    @router.get(
        JOBS + "/{job_id}/history", response_model=None, responses=answers("ListJobHistoryResponse")
    )
    @answers_json
    def job_history(
        job_id: str,
        since: Text = None,
        event_type: Text = None,
        execution_id: Text = None,
        node_id: Text = None,
        limit: Text = None,
        next_token: Text = None,
    ) -> dict[str, Any]:
        job = service.store.get_job(job_id)
        entries = service.store.history(
            job.id,
            execution_id=execution_id or None,
            node_id=node_id or None,
            event_type=history_event_type(event_type),
            since_ns=since_ns(since),
        )
        shown, token = page(entries, limit=parse_int(limit, "limit"), next_token=next_token or "")
        return listing((entry.to_wire() for entry in shown), token)

    @router.get(
        JOBS + "/{job_id}/results", response_model=None, responses=answers("ListJobResultsResponse")
    )
    @answers_json
    def job_results(job_id: str) -> dict[str, Any]:
        job = service.store.get_job(job_id)
        results = [
            run.published_result.to_wire()
            for run in service.store.executions(job.id)
            if run.state == ExecutionStateType.COMPLETED
            and run.published_result is not None
            and not run.verdict.mismatched  # a verified job's results are the majority's
        ]
        return listing(results)

    return router


def _nodes_router(service: OrchestratorService) -> APIRouter:
    router = APIRouter()

    @router.get(NODES, response_model=None, responses=answers("ListNodesResponse"))
    @answers_json
    def list_nodes(
        request: Request,
        limit: Text = None,
        next_token: Text = None,
        order_by: Text = None,
        reverse: Text = None,
        labels: Texts = None,
    ) -> dict[str, Any]:
        params = request.query_params
        query = node_query(
            labels=parse_label_selector(labels or []),
            approval=named_param(params, "filter-approval", "filter_approval"),
            status=named_param(params, "filter-status", "filter_status"),
            order_by=order_by or "",
            reverse=parse_bool(reverse, "reverse"),
        )
        states, token = page(
            select_nodes(service.nodes(), query),
            limit=parse_int(limit, "limit"),
            next_token=next_token or "",
        )
        items = [state.to_wire() for state in states]
        return {"Nodes": items, "NextToken": token, "nodes": items}

    @router.get(NODES + "/{node_id}", response_model=None, responses=answers("GetNodeResponse"))
    @answers_json
    def get_node(node_id: str) -> dict[str, Any]:
        state = find_node(service.nodes(), node_id).to_wire()
        return {"Node": state, "node": state}

    return router


def _agent_router(service: OrchestratorService) -> APIRouter:
    router = APIRouter()

    @router.get(AGENT + "/alive", response_model=None, responses=answers("IsAliveResponse"))
    @answers_json
    def alive() -> dict[str, Any]:
        return {"Status": "OK"}

    @router.get(AGENT + "/version", response_model=None, responses=answers("GetVersionResponse"))
    @answers_json
    def version() -> dict[str, Any]:
        info = service.self_info().bacalhau_version.to_wire()
        return {**info, "Version": info}

    @router.get(AGENT + "/node", response_model=None, responses=answers("GetAgentNodeResponse"))
    @answers_json
    def node() -> dict[str, Any]:
        info = service.self_info().to_wire()
        return {**info, "NodeInfo": info}

    @router.get(AGENT + "/debug", response_model=None, responses=answers("DebugResponse"))
    @answers_json
    def debug() -> dict[str, Any]:
        """Counters for benchmarks and operators: store transactions, messages, queues."""
        return service.debug()

    @router.get("/api/v1/healthz", response_model=None, responses=answers("IsAliveResponse"))
    @answers_json
    def healthz() -> dict[str, Any]:
        return {"Status": "OK"}

    @router.get(
        "/api/v1/livez",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def livez() -> PlainTextResponse:
        return PlainTextResponse("OK")

    return router
