"""How the HTTP API reports errors: one JSON shape, ``{Code, Message, Field?}``, for all of them.

    ValidationError        -> 400, ``Field`` names the bad input (``Job.Tasks[0].Engine.Type``)
    RequestValidationError -> 400 (a parameter FastAPI itself could not read)
    NotFoundError          -> 404
    AmbiguousIDError       -> 409, an ID prefix that matches several nodes (as Bacalhau answers)
    StateTransitionError   -> 409
    HTTPException          -> its own status (unknown route 404, wrong method 405, ...)
    anything else          -> 500 ``internal error: <type>``, traceback in the log

The 500 case is a middleware, not an exception handler: Starlette re-raises whatever reaches
its server-error handler, which would print a second traceback from uvicorn.

The shape is what Bacalhau 1.4's ``apimodels.APIError`` (``{code: int, message: string}``)
decodes into: Go matches JSON keys without regard to case, and ignores ``Field``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.errors import NotFoundError, StateTransitionError, ValidationError
from protocol.wire import field_path

log = logging.getLogger("bacalao.api")


class AmbiguousIDError(ValidationError):
    """An ID prefix that matches more than one thing: the caller must give more of it."""


class TooLargeError(ValidationError):
    """A request body over the size the server takes (413)."""


_PARAMETER_PLACES = ("query", "path", "header", "cookie", "body")


def error_body(code: int, message: str, field: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"Code": code, "Message": message}
    if field:
        body["Field"] = field
    return body


def error_response(code: int, message: str, field: str = "") -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=code)


def _rejected(request: Request, code: int, message: str, field: str = "") -> JSONResponse:
    log.info(
        "event=api_rejected method=%s path=%s status=%d field=%s message=%r",
        request.method, request.url.path, code, field, message,
    )  # fmt: skip
    return error_response(code, message, field)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return _rejected(request, 400, str(exc), exc.field)


def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _rejected(request, 404, str(exc) or "not found")


def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return _rejected(request, 409, str(exc) or "conflict")


def _ambiguous(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AmbiguousIDError)
    return _rejected(request, 409, str(exc), exc.field)


def _too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooLargeError)
    return _rejected(request, 413, str(exc), exc.field)


def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not errors:
        return _rejected(request, 400, "bad request")
    loc = tuple(errors[0].get("loc", ()))
    if loc and loc[0] in _PARAMETER_PLACES:
        loc = loc[1:]
    field = field_path(loc)
    problem = str(errors[0].get("msg", "is not valid"))
    return _rejected(request, 400, f"{field}: {problem}" if field else problem, field)


def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = error_response(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def internal_error_response(exc: BaseException) -> JSONResponse:
    return error_response(500, f"internal error: {type(exc).__name__}")


class InternalErrorMiddleware:
    """Turns any exception that escapes a handler into a logged 500 ``{Code, Message}``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception(
                "event=api_internal_error method=%s path=%s error_type=%s error=%r",
                scope.get("method", ""), scope.get("path", ""), type(exc).__name__, str(exc),
            )  # fmt: skip
            if started:
                raise
            await internal_error_response(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(AmbiguousIDError, _ambiguous)
    app.add_exception_handler(TooLargeError, _too_large)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(StateTransitionError, _conflict)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_middleware(InternalErrorMiddleware)
