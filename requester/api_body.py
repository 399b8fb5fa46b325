"""Reading the body of ``PUT /jobs``: JSON that Go's decoder would take, then the Job.

Python's ``json`` takes more than Go's ``encoding/json`` does (``NaN``, integers of any size,
unpaired UTF-16 surrogates) and fails differently (nesting deep enough to exhaust the
interpreter's stack). Each of those is a 400 naming where it is, never a 500 from deeper down:

    not JSON, NaN/Infinity, too deep to parse   -> ``body``
    nested deeper than MAX_DEPTH levels         -> where it starts (``Job.Meta``)
    an integer outside int64                    -> its path (``Job.Count``)
    a string with an unpaired surrogate         -> its path (``Job.Name``)
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from protocol.errors import ValidationError
from protocol.job import Job
from protocol.wire import field_path
from requester.api_errors import TooLargeError
from requester.api_query import reading, shown

MAX_DEPTH = 100
# A job is a description, not its data: inline inputs are capped at 10 MiB decoded on the
# nodes, about 14 MiB as base64, so a larger body is refused before it is held in memory.
MAX_BODY_BYTES = 32 * 1024 * 1024
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

Path = tuple[str | int, ...]


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused (413) as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> TooLargeError:
    return TooLargeError(
        "body", f"is {size} bytes or more, over the {limit}-byte limit for a job description"
    )


def parse_put_job(raw: bytes) -> Job:
    """``{"Job": {...}}`` (keys any case; ``idempotencyToken``, ``credential`` and
    ``namespace`` are accepted and ignored) -> the validated Job."""
    body = read_json(raw)
    if not isinstance(body, dict):
        raise ValidationError(
            "body", f'must be a JSON object like {{"Job": {{...}}}}, got {_json_type(body)}'
        )
    job = next((value for key, value in body.items() if key.lower() == "job"), None)
    if job is None:
        raise ValidationError("Job", "is required")
    with reading("Job"):
        return Job.from_wire(job, prefix="Job")


def read_json(raw: bytes) -> Any:
    """The JSON document in ``raw``, checked by :func:`check_json`."""
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValidationError("body", f"nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ValidationError("body", f"is not valid JSON ({shown(str(exc), 120)})") from None
    check_json(document)
    return document


def check_json(document: Any, max_depth: int = MAX_DEPTH) -> None:
    """Walk ``document`` without recursion; raise :class:`ValidationError` at the first value
    (in document order) that nests too deep, overflows int64 or is not valid Unicode."""
    stack: list[tuple[Any, Path]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            if len(path) >= max_depth:
                raise ValidationError(_named(path), f"nests deeper than {max_depth} levels")
            children = list(value.items() if isinstance(value, dict) else enumerate(value))
            for key, _ in children:
                if isinstance(key, str):
                    _check_text(key, path, "has a key")
            stack.extend((child, (*path, key)) for key, child in reversed(children))
        elif isinstance(value, str):
            _check_text(value, path, "is text")
        elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError(
                field_path(path) or "body", "is out of range for a 64-bit integer"
            )


def _check_text(text: str, path: Path, what: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            field_path(path) or "body", f"{what} with an unpaired UTF-16 surrogate"
        ) from None


def _named(path: Path, shown_parts: int = 8) -> str:
    """The start of a deep path without its trailing list indices: ``Job.Meta``, not
    ``Job.Meta[0][0][0]...``, so the message points where a person would look."""
    start = list(path[:shown_parts])
    while start and isinstance(start[-1], int):
        start.pop()
    return field_path(tuple(start)) or "body"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
