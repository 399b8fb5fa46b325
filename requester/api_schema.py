"""The API's OpenAPI document: what FastAPI derives from the routes, plus the request bodies
that the routes read by hand (``PUT /jobs`` parses its body itself, for Bacalhau's error
shape and speed), described with the wire models' own JSON schema and Bacalhau's names."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from protocol.job import Job

_COMPONENTS = "#/components/schemas/"
PUT_JOB_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}PutJobRequest"}}},
    }
}


def _model_schemas() -> dict[str, Any]:
    job = Job.model_json_schema(by_alias=True, ref_template=_COMPONENTS + "{model}")
    schemas: dict[str, Any] = job.pop("$defs", {})
    schemas["Job"] = job
    schemas["PutJobRequest"] = {
        "title": "PutJobRequest",
        "type": "object",
        "required": ["Job"],
        "properties": {"Job": {"$ref": f"{_COMPONENTS}Job"}},
    }
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
