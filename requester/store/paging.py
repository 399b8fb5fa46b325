"""How ``list_jobs`` and ``history`` read: keyset pages with opaque tokens, label selectors
applied while reading, and the history filters.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.errors import ValidationError
from protocol.job import LabelSelectorRequirement
from protocol.selectors import matches

ORDER_COLUMNS = {
    "created_at": "created_ns",
    "modified_at": "modified_ns",
    "id": "id",
    "name": "name",
    "state": "state",
}
_INTEGER_ORDERS = frozenset({"created_at", "modified_at"})
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class PageToken:
    """Where the next page starts: the sort key and ID of the last row already returned."""

    order_by: str
    reverse: bool
    last_key: str | int
    last_id: str

    def encode(self) -> str:
        raw = json.dumps([self.order_by, self.reverse, self.last_key, self.last_id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, *, order_by: str, reverse: bool) -> PageToken:
        try:
            padded = token + "=" * (-len(token) % 4)
            fields = json.loads(base64.urlsafe_b64decode(padded.encode()))
            saved_order, saved_reverse, last_key, last_id = fields
        except (ValueError, TypeError, binascii.Error):
            raise ValidationError("next_token", "is not a token this server issued") from None
        if not _fits_order(last_key, str(saved_order)) or not _is_text(last_id):
            raise ValidationError("next_token", "is not a token this server issued")
        if saved_order != order_by or saved_reverse != reverse:
            raise ValidationError(
                "next_token", "was issued for another ordering; repeat order_by and reverse"
            )
        return cls(order_by, reverse, last_key, last_id)


def _fits_order(key: object, order_by: str) -> bool:
    """A sort key every backend can bind and compare with the ordering's column."""
    if order_by in _INTEGER_ORDERS:
        return isinstance(key, int) and not isinstance(key, bool) and key in _INT64
    return _is_text(key)


def _is_text(value: object) -> bool:
    """A str every backend can bind: UTF-8 (no unpaired surrogates), no NUL (PostgreSQL)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def jobs_page_query(
    *,
    column: str,
    labels_sql: str,
    namespace: str | None,
    after: PageToken | None,
    reverse: bool,
    limit: int,
) -> tuple[str, list[str | int]]:
    """SQL for up to ``limit`` jobs after ``after``, keyset-paginated on ``(column, id)``.

    Rows are ``(sort key, id, labels JSON or NULL, job JSON)``; ``labels_sql`` is the
    backend's expression for the labels' JSON text.
    """
    if column not in ORDER_COLUMNS.values():
        raise ValueError(f"not an orderable column: {column!r}")
    where: list[str] = []
    params: list[str | int] = []
    if namespace:
        where.append("namespace = ?")
        params.append(namespace)
    if after is not None:
        where.append(f"({column}, id) {'<' if reverse else '>'} (?, ?)")
        params += [after.last_key, after.last_id]
    direction = "DESC" if reverse else "ASC"
    # ``id`` breaks ties; ordered by ``id`` itself, a second term only makes SQLite sort
    order = f"{column} {direction}" + ("" if column == "id" else f", id {direction}")
    sql = (
        f"SELECT {column}, id, {labels_sql}, json FROM jobs"  # noqa: S608
        f"{' WHERE ' + ' AND '.join(where) if where else ''}"
        f" ORDER BY {order} LIMIT ?"
    )
    return sql, [*params, limit]


def history_query(
    job_id: str,
    *,
    types: tuple[str, ...],
    execution_id: str | None,
    node_id: str | None,
    since_ns: int,
) -> tuple[str, list[str | int]]:
    where = ["job_id = ?", f"type IN ({', '.join('?' for _ in types)})", "time_ns >= ?"]
    params: list[str | int] = [job_id, *types, since_ns]
    if execution_id:
        where.append("execution_id = ?")
        params.append(execution_id)
    if node_id:
        where.append("node_id = ?")
        params.append(node_id)
    return f"SELECT json FROM history WHERE {' AND '.join(where)} ORDER BY id", params  # noqa: S608


def selector(
    labels: Mapping[str, str] | Sequence[LabelSelectorRequirement] | None,
) -> list[LabelSelectorRequirement]:
    """A label selector from requirements or a mapping of labels to equal."""
    if not labels:
        return []
    if isinstance(labels, Mapping):
        return [
            LabelSelectorRequirement(key=key, operator="=", values=[value])
            for key, value in labels.items()
        ]
    return list(labels)


def selected(requirements: Sequence[LabelSelectorRequirement], labels_json: str | None) -> bool:
    if not requirements:
        return True
    labels = (json.loads(labels_json) if labels_json else None) or {}
    return all(matches(labels, requirement) for requirement in requirements)
