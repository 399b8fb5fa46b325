"""Reading requests: the PUT job body and the query parameters of the list endpoints.

Every bad input raises :class:`ValidationError` naming the parameter (``limit``, ``labels``,
``Job.Count``), which the API answers with 400. Query parameters follow Bacalhau's spelling,
and booleans are read the way Go's ``strconv.ParseBool`` reads them, plus ``yes``/``no``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from protocol.errors import ValidationError
from protocol.execution import Execution
from protocol.job import Job
from protocol.selectors import describe, parse_selector

T = TypeVar("T")

_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"", "0", "f", "false", "n", "no", "off"})
INCLUDES = ("executions", "history")
_HISTORY_EVENT_TYPES = {
    "": None,
    "all": "all",
    "job": "jobs",
    "jobs": "jobs",
    "execution": "executions",
    "executions": "executions",
}
_EXECUTION_ORDER: dict[str, Callable[[Execution], tuple[int | str, str]]] = {
    "created_at": lambda e: (e.create_time, e.id),
    "create_time": lambda e: (e.create_time, e.id),
    "modified_at": lambda e: (e.modify_time, e.id),
    "modify_time": lambda e: (e.modify_time, e.id),
    "id": lambda e: (e.id, e.id),
    "node_id": lambda e: (e.node_id, e.id),
}
_NS_PER_S = 1_000_000_000


def parse_put_job(raw: bytes) -> Job:
    """``{"Job": {...}}`` (keys any case; ``idempotencyToken``, ``credential`` and
    ``namespace`` are accepted and ignored) -> the validated Job."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ValidationError("body", f"is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ValidationError(
            "body", f'must be a JSON object like {{"Job": {{...}}}}, got {_json_type(body)}'
        )
    job = next((value for key, value in body.items() if str(key).lower() == "job"), None)
    if job is None:
        raise ValidationError("Job", "is required")
    return Job.from_wire(job, prefix="Job")


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def parse_int(value: str | None, name: str, *, minimum: int = 0) -> int:
    """A whole number at least ``minimum``; absent or empty is ``minimum``."""
    if value is None or not value.strip():
        return minimum
    try:
        number = int(value.strip())
    except ValueError:
        raise ValidationError(name, f"{value!r} is not a whole number") from None
    if number < minimum:
        raise ValidationError(name, f"must be at least {minimum}, got {number}")
    return number


def parse_bool(value: str | None, name: str) -> bool:
    lowered = (value or "").strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationError(name, f"{value!r} is not true or false")


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """``labels`` filters, repeated and/or comma-separated: ``env=prod``, ``env==prod`` or
    ``env in (prod)`` -> ``{"env": "prod"}``. The job store matches labels by equality only,
    so any other operator is refused rather than silently ignored."""
    wanted: dict[str, str] = {}
    for value in values:
        try:
            requirements = parse_selector(value)
        except ValidationError as exc:
            raise ValidationError("labels", exc.problem) from None
        for requirement in requirements:
            if requirement.operator not in ("=", "==", "in") or len(requirement.values) != 1:
                raise ValidationError(
                    "labels",
                    f"{describe(requirement)!r}: only key=value filters are supported here",
                )
            key, label = requirement.key, requirement.values[0]
            if wanted.get(key, label) != label:
                raise ValidationError(
                    "labels", f"{key!r} is asked to equal both {wanted[key]!r} and {label!r}"
                )
            wanted[key] = label
    return wanted


def parse_include(values: Iterable[str]) -> frozenset[str]:
    """``include=executions,history`` (or repeated) -> the parts of a job to add."""
    parts = {part.strip().lower() for value in values for part in value.split(",")}
    parts.discard("")
    unknown = sorted(parts.difference(INCLUDES))
    if unknown:
        raise ValidationError(
            "include", f"unknown {', '.join(map(repr, unknown))} (known: {', '.join(INCLUDES)})"
        )
    return frozenset(parts)


def history_event_type(value: str | None) -> str | None:
    """Bacalhau's ``event_type`` (all, job, execution) -> the job store's (all, jobs, ...)."""
    lowered = (value or "").strip().lower()
    if lowered not in _HISTORY_EVENT_TYPES:
        known = "all, job, execution"
        raise ValidationError("event_type", f"unknown event type {value!r} (known: {known})")
    return _HISTORY_EVENT_TYPES[lowered]


def since_ns(value: str | None) -> int:
    """Bacalhau's ``since`` is Unix seconds; the job store counts nanoseconds."""
    return parse_int(value, "since") * _NS_PER_S


def order_executions(
    executions: Sequence[Execution], order_by: str | None, reverse: bool
) -> list[Execution]:
    """Executions sorted by ``order_by`` (creation order when empty), reversed if asked."""
    key_name = (order_by or "").strip().lower()
    if not key_name:
        ordered = list(executions)
    elif key_name in _EXECUTION_ORDER:
        ordered = sorted(executions, key=_EXECUTION_ORDER[key_name])
    else:
        known = ", ".join(_EXECUTION_ORDER)
        raise ValidationError("order_by", f"unknown ordering {order_by!r} (known: {known})")
    return ordered[::-1] if reverse else ordered


def page(items: Sequence[T], *, limit: int, next_token: str) -> tuple[list[T], str]:
    """One page of an in-memory list; the token is the offset of the next page ("" at the
    end). ``limit`` 0 means everything that is left."""
    start = 0
    if next_token:
        if not next_token.isdigit() or int(next_token) > len(items):
            raise ValidationError("next_token", f"{next_token!r} is not a token of this list")
        start = int(next_token)
    end = len(items) if limit <= 0 else min(len(items), start + limit)
    return list(items[start:end]), str(end) if end < len(items) else ""


def listing(items: Iterable[Mapping[str, Any]], next_token: str = "") -> dict[str, Any]:
    """Bacalhau's list response: ``{Items, NextToken}``."""
    return {"Items": list(items), "NextToken": next_token}
