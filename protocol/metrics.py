"""Prometheus metrics of a node, and what every node has: the messages its bus moved.

A node keeps its own :class:`prometheus_client.CollectorRegistry` (several nodes may share a
process: a devstack, the tests), served as ``/metrics`` in the text format. Counters that the
code keeps anyway (the bus's, the store's) are read when scraped, by collectors; nothing on a
hot path takes a lock for a metric. Names follow Prometheus' conventions (``bacalao_`` first,
``_total`` for counters, ``_seconds`` for durations).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["BusCollector", "MessageCounts", "metrics_endpoint", "render"]


class MessageCounts(Protocol):
    """What a bus counts: messages by wire type, and those it dropped."""

    @property
    def received(self) -> Counter[str]: ...

    @property
    def sent(self) -> Counter[str]: ...

    @property
    def dropped(self) -> int: ...

    @property
    def active_transport(self) -> str: ...


class BusCollector(Collector):
    """Messages received, sent and dropped, by type and by the transport in use."""

    def __init__(self, bus: MessageCounts) -> None:
        self._bus = bus

    def collect(self) -> Iterable[Metric]:
        transport = self._bus.active_transport
        for direction, counts in (("received", self._bus.received), ("sent", self._bus.sent)):
            family = CounterMetricFamily(
                f"bacalao_messages_{direction}",
                f"bprotocol messages {direction}, by type (a Batch counts each message in it)",
                labels=["type", "transport"],
            )
            for kind, count in sorted(dict(counts).items()):
                family.add_metric([kind, transport], count)
            yield family
        dropped = CounterMetricFamily(
            "bacalao_messages_dropped",
            "Messages dropped as malformed, refused (unsigned, forged, replayed) or undecodable",
            labels=["transport"],
        )
        dropped.add_metric([transport], self._bus.dropped)
        yield dropped


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (``CONTENT_TYPE_LATEST``)."""
    return generate_latest(registry)


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Response]:
    """A Starlette endpoint answering GET with ``registry`` (sync: collecting reads SQLite)."""

    def metrics(request: Request) -> Response:
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
