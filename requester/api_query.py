"""Reading requests: the query parameters of the list endpoints, and paging in memory.

Every bad input raises :class:`ValidationError` naming the parameter (``limit``, ``labels``,
``next_token``), which the API answers with 400; :func:`reading` turns anything else that
goes wrong while reading a request into one too, so a malformed request never gets a 500.
Query parameters follow Bacalhau's spelling, numbers its Go types (``limit`` is a uint32,
``since`` Unix seconds in an int64), and booleans are read the way Go's
``strconv.ParseBool`` reads them, plus ``yes``/``no``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from protocol.errors import NotFoundError, ValidationError
from protocol.execution import Execution
from protocol.job import LabelSelectorRequirement
from protocol.selectors import parse_selector

T = TypeVar("T")

log = logging.getLogger("bacalao.api")

_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"", "0", "f", "false", "n", "no", "off"})
_WHOLE_NUMBER = re.compile(r"^[+-]?[0-9]{1,40}$")
INCLUDES = ("executions", "history")
ALL_NAMESPACES = "*"
LIMIT_MAX = 2**32 - 1  # Bacalhau's limit is a uint32
_NS_PER_S = 1_000_000_000
SINCE_MAX_S = (2**63 - 1) // _NS_PER_S  # the job store keeps nanoseconds in an int64
_HISTORY_EVENT_TYPES = {
    "": None,
    "all": "all",
    "job": "jobs",
    "jobs": "jobs",
    "execution": "executions",
    "executions": "executions",
}
_EXECUTION_ORDER: dict[str, Callable[[Execution], tuple[int | str, str]]] = {
    "modify_time": lambda e: (e.modify_time, e.id),
    "modified_at": lambda e: (e.modify_time, e.id),
    "create_time": lambda e: (e.create_time, e.id),
    "created_at": lambda e: (e.create_time, e.id),
    "id": lambda e: (e.id, e.id),
    "state": lambda e: (int(e.state), e.id),
    "node_id": lambda e: (e.node_id, e.id),
}
DEFAULT_EXECUTION_ORDER = "modify_time"  # as Bacalhau's ListJobExecutions


@contextmanager
def reading(field: str) -> Iterator[None]:
    """Whatever goes wrong while reading ``field`` of a request is the request's fault: a
    :class:`ValidationError` naming it (logged with its traceback, as it shows a parser that
    let a bad input through), never an internal error."""
    try:
        yield
    except (ValidationError, NotFoundError):
        raise
    except (ArithmeticError, LookupError, RecursionError, TypeError, ValueError) as exc:
        log.warning(
            "event=api_unreadable field=%s error_type=%s error=%r",
            field, type(exc).__name__, shown(str(exc), 200), exc_info=True,
        )  # fmt: skip
        raise ValidationError(field, f"cannot be read ({type(exc).__name__})") from None


def shown(value: str, width: int = 40) -> str:
    """``value`` cut to ``width`` characters, to quote in an error message."""
    return value if len(value) <= width else value[: width - 3] + "..."


def parse_int(value: str | None, name: str, *, minimum: int = 0, maximum: int = LIMIT_MAX) -> int:
    """A whole number (ASCII digits, as Go's ``strconv`` reads them) from ``minimum`` to
    ``maximum``; absent or empty is ``minimum``."""
    if value is None or not value.strip():
        return minimum
    text = value.strip()
    if not _WHOLE_NUMBER.match(text):
        raise ValidationError(name, f"{shown(text)!r} is not a whole number")
    with reading(name):
        number = int(text)
    if number < minimum:
        raise ValidationError(name, f"must be at least {minimum}, got {number}")
    if number > maximum:
        raise ValidationError(name, f"must be at most {maximum}, got {shown(text)}")
    return number


def parse_bool(value: str | None, name: str) -> bool:
    lowered = (value or "").strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationError(name, f"{shown(value or '')!r} is not true or false")


def parse_label_selector(
    values: Iterable[str], name: str = "labels"
) -> list[LabelSelectorRequirement]:
    """``labels`` selectors, repeated and/or comma-separated, in Kubernetes syntax as
    Bacalhau reads them: ``env=prod``, ``env!=dev``, ``env in (a,b)``, ``env notin (b)``,
    ``gpu``, ``!spot``. Every requirement must hold; none given selects everything."""
    requirements: list[LabelSelectorRequirement] = []
    for value in values:
        try:
            requirements += parse_selector(value)
        except ValidationError as exc:
            raise ValidationError(name, exc.problem) from None
    return requirements


def named_param(params: Mapping[str, str], *names: str) -> tuple[str, str]:
    """The first of ``names`` present in ``params`` as (name, value), for a parameter that
    clients spell more than one way; (the first name, "") when none is."""
    for name in names:
        if name in params:
            return name, params[name]
    return names[0], ""


def parse_namespace(value: str | None) -> str | None:
    """A namespace to list; None (every namespace) for none, "" or ``*`` (Bacalhau's
    AllNamespacesNamespace)."""
    namespace = (value or "").strip()
    return None if namespace in ("", ALL_NAMESPACES) else namespace


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
    """Bacalhau's ``since`` is Unix seconds; the job store counts nanoseconds in an int64."""
    return parse_int(value, "since", maximum=SINCE_MAX_S) * _NS_PER_S


def order_executions(
    executions: Sequence[Execution], order_by: str | None, reverse: bool
) -> list[Execution]:
    """Executions sorted by ``order_by`` (``modify_time`` when empty, as Bacalhau; also
    ``create_time``, ``id``, ``state``), reversed if asked; ties go by execution ID."""
    key_name = (order_by or "").strip().lower() or DEFAULT_EXECUTION_ORDER
    if key_name not in _EXECUTION_ORDER:
        known = ", ".join(_EXECUTION_ORDER)
        raise ValidationError(
            "order_by", f"unknown ordering {shown(order_by or '')!r} (known: {known})"
        )
    return sorted(executions, key=_EXECUTION_ORDER[key_name], reverse=reverse)


def page(items: Sequence[T], *, limit: int, next_token: str) -> tuple[list[T], str]:
    """One page of an in-memory list; the token is the offset of the next page ("" at the
    end). ``limit`` 0 means everything that is left."""
    start = 0
    if next_token:
        if not _WHOLE_NUMBER.match(next_token) or not 0 <= int(next_token) <= len(items):
            raise ValidationError(
                "next_token", f"{shown(next_token)!r} is not a token of this list"
            )
        start = int(next_token)
    end = len(items) if limit <= 0 else min(len(items), start + limit)
    return list(items[start:end]), str(end) if end < len(items) else ""


def listing(items: Iterable[Mapping[str, Any]], next_token: str = "") -> dict[str, Any]:
    """Bacalhau's list response: ``{Items, NextToken}``."""
    return {"Items": list(items), "NextToken": next_token}
