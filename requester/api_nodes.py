"""The nodes the API lists and finds: Bacalhau's filters and orderings of ``GET /nodes``, and
node ID prefixes.

Filters, all of which must hold: ``labels`` (a Kubernetes selector on the node's labels),
``filter-approval`` (APPROVED, PENDING, REJECTED: the membership) and ``filter-status``
(CONNECTED, DISCONNECTED). Orderings (``order_by``): ``id`` (the default), ``type``,
``available_cpu|memory|disk|gpu`` (most free first, as Bacalhau), ``approval`` (membership)
and ``status`` (connection); ties go by node ID.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from protocol.errors import NotFoundError, ValidationError
from protocol.job import LabelSelectorRequirement
from protocol.node import NodeConnection, NodeState, NodeType
from protocol.resources import Resources
from protocol.selectors import matches
from requester.api_errors import AmbiguousIDError
from requester.api_query import shown

APPROVALS = ("APPROVED", "PENDING", "REJECTED")
STATUSES = tuple(connection.value for connection in NodeConnection)
_TYPE_RANK = {NodeType.REQUESTER: 0, NodeType.COMPUTE: 1, NodeType.HYBRID: 2}
_SHOWN_MATCHES = 3

SortKey = tuple[float | str, str]


def _free(state: NodeState) -> Resources:
    compute = state.info.compute_node_info
    return compute.available_capacity if compute is not None else Resources()


_NODE_ORDER: dict[str, Callable[[NodeState], SortKey]] = {
    "id": lambda s: ("", s.info.node_id),
    "type": lambda s: (_TYPE_RANK.get(s.info.node_type, len(_TYPE_RANK)), s.info.node_id),
    "available_cpu": lambda s: (-_free(s).cpu, s.info.node_id),
    "available_memory": lambda s: (-_free(s).memory, s.info.node_id),
    "available_disk": lambda s: (-_free(s).disk, s.info.node_id),
    "available_gpu": lambda s: (-_free(s).gpu, s.info.node_id),
    "approval": lambda s: (s.membership, s.info.node_id),
    "status": lambda s: (s.connection.value, s.info.node_id),
}


@dataclass(frozen=True)
class NodeQuery:
    """What ``GET /nodes`` asks for, read and checked by :func:`node_query`."""

    labels: Sequence[LabelSelectorRequirement] = field(default_factory=tuple)
    approval: str = ""
    status: str = ""
    order_by: str = "id"
    reverse: bool = False

    def wants(self, state: NodeState) -> bool:
        if self.approval and state.membership.upper() != self.approval:
            return False
        if self.status and state.connection.value != self.status:
            return False
        return all(matches(state.info.labels, requirement) for requirement in self.labels)


def node_query(
    *,
    labels: Sequence[LabelSelectorRequirement] = (),
    approval: tuple[str, str] = ("filter-approval", ""),
    status: tuple[str, str] = ("filter-status", ""),
    order_by: str = "",
    reverse: bool = False,
) -> NodeQuery:
    """``approval`` and ``status`` are (parameter name as sent, value), any case."""
    order = order_by.strip().lower() or "id"
    if order not in _NODE_ORDER:
        known = ", ".join(_NODE_ORDER)
        raise ValidationError("order_by", f"unknown ordering {shown(order_by)!r} (known: {known})")
    return NodeQuery(
        labels=tuple(labels),
        approval=_one_of(*approval, APPROVALS),
        status=_one_of(*status, STATUSES),
        order_by=order,
        reverse=reverse,
    )


def _one_of(name: str, value: str, known: Sequence[str]) -> str:
    wanted = value.strip().upper()
    if wanted and wanted not in known:
        raise ValidationError(
            name, f"unknown value {shown(value)!r} (known: {', '.join(k.lower() for k in known)})"
        )
    return wanted


def select_nodes(states: Sequence[NodeState], query: NodeQuery) -> list[NodeState]:
    """The nodes the query wants, in its order."""
    wanted = [state for state in states if query.wants(state)]
    return sorted(wanted, key=_NODE_ORDER[query.order_by], reverse=query.reverse)


def find_node(states: Sequence[NodeState], node_id: str) -> NodeState:
    """The node with this ID, or the one node whose ID starts with it. NotFoundError if none;
    :class:`AmbiguousIDError` (409, as Bacalhau's MultipleNodesFound) if several do."""
    wanted = node_id.strip()
    if not wanted:
        raise ValidationError("id", "a node ID is required")
    found = [state for state in states if state.info.node_id.startswith(wanted)]
    exact = [state for state in found if state.info.node_id == wanted]
    if exact:
        return exact[0]
    if not found:
        raise NotFoundError(f"node {wanted} not found")
    if len(found) > 1:
        ids = sorted(state.info.node_id for state in found)
        more = ", ..." if len(ids) > _SHOWN_MATCHES else ""
        raise AmbiguousIDError(
            "id",
            f"{shown(wanted)!r} matches {len(ids)} nodes "
            f"({', '.join(ids[:_SHOWN_MATCHES])}{more}); give more of the ID",
        )
    return found[0]
