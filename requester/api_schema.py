"""The API's OpenAPI document: what FastAPI derives from the routes, plus what the routes
read and answer by hand (``PUT /jobs`` parses its body itself, and every route answers a
dict straight from the wire models, for Bacalhau's error shape and speed), described with
the wire models' own JSON schema and Bacalhau's names (``PutJobResponse``,
``ListJobsResponse``, ... as the Bacalhau client calls them)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from protocol.execution import Execution
from protocol.history import JobHistory
from protocol.job import Job, SpecConfig
from protocol.node import BuildVersionInfo, NodeInfo, NodeState

_COMPONENTS = "#/components/schemas/"
PUT_JOB_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}PutJobRequest"}}},
    }
}
"""``openapi_extra`` of PUT /jobs: the body it reads by hand."""


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _COMPONENTS + name}


def _object(required: tuple[str, ...] = (), **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


_TEXT: dict[str, Any] = {"type": "string"}


def _listing(item: str) -> dict[str, Any]:
    """Bacalhau's list answer: ``{Items, NextToken}``."""
    items = {"type": "array", "items": _ref(item)}
    return _object(("Items", "NextToken"), Items=items, NextToken=_TEXT)


_ANSWERS: dict[str, dict[str, Any]] = {
    "PutJobRequest": _object(("Job",), Job=_ref("Job")),
    "PutJobResponse": _object(
        ("JobID", "EvaluationID", "Warnings"),
        JobID=_TEXT,
        EvaluationID=_TEXT,
        Warnings={"type": "array", "items": _TEXT},
    ),
    "ListJobsResponse": _listing("Job"),
    "ListJobExecutionsResponse": _listing("Execution"),
    "ListJobHistoryResponse": _listing("JobHistory"),
    "ListJobResultsResponse": _listing("SpecConfig"),
    "GetJobResponse": _object(
        ("Job",),
        Job=_ref("Job"),
        History=_ref("ListJobHistoryResponse"),
        Executions=_ref("ListJobExecutionsResponse"),
    ),
    "StopJobResponse": _object(("EvaluationID",), EvaluationID=_TEXT),
    "ListNodesResponse": _object(
        ("Nodes", "NextToken"),
        Nodes={"type": "array", "items": _ref("NodeState")},
        NextToken=_TEXT,
    ),
    "GetNodeResponse": _object(("Node",), Node=_ref("NodeState")),
    "IsAliveResponse": _object(("Status",), Status=_TEXT),
    "GetVersionResponse": _object(("Version",), Version=_ref("BuildVersionInfo")),
    "GetAgentNodeResponse": _object(("NodeInfo",), NodeInfo=_ref("NodeInfo")),
    "DebugResponse": {"type": "object"},
    "Error": _object(("Code", "Message"), Code={"type": "integer"}, Message=_TEXT, Field=_TEXT),
}


def answers(name: str) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses``: ``name`` on success, Bacalhau's error shape otherwise."""
    error = {"description": "Bacalhau's error shape", "content": _json(_ref("Error"))}
    return {
        200: {"description": "OK", "content": _json(_ref(name))},
        "4XX": error,
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _model_schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        Job,
        Execution,
        JobHistory,
        NodeState,
        NodeInfo,
        BuildVersionInfo,
        SpecConfig,
    ]
    _, document = models_json_schema(
        [(model, "serialization") for model in models],
        by_alias=True,
        ref_template=_COMPONENTS + "{model}",
    )
    schemas: dict[str, Any] = document.get("$defs", {})
    schemas.update(_ANSWERS)
    return schemas


def install_openapi(app: FastAPI) -> None:
    """Serve ``/openapi.json`` with the job models in ``components.schemas``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_model_schemas())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
