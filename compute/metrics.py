"""A compute node's Prometheus metrics: its bids by outcome, what it runs, how long runs take,
and its capacity (total, reserved by open bids, allocated to runs, free)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from compute.node import ComputeNode
from protocol.resources import Resources

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600, 86400)
BID_OUTCOMES = ("accepted", "refused", "busy")


class ComputeMetrics(Collector):
    """Registered in ``registry``; hears of every run's end from the node."""

    def __init__(self, node: ComputeNode, registry: CollectorRegistry) -> None:
        self._node = node
        self.run_seconds = Histogram(
            "bacalao_execution_duration_seconds",
            "How long the executor ran a task (inputs staged, results not yet published), by "
            "engine and whether it exited 0",
            labelnames=["engine", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        node.on_run_ended(self._ran)
        registry.register(self)

    def _ran(self, engine: str, exit_code: int, seconds: float) -> None:
        outcome = "success" if exit_code == 0 else "failure"
        self.run_seconds.labels(engine=engine, outcome=outcome).observe(seconds)

    def collect(self) -> Iterable[Metric]:
        counts = self._node.counts
        family = CounterMetricFamily(
            "bacalao_compute_bids",
            "This node's answers to asks for bids, by outcome",
            labels=["outcome"],
        )
        for outcome in BID_OUTCOMES:
            family.add_metric([outcome], counts.get(f"bid_{outcome}", 0))
        yield family
        refusals = CounterMetricFamily(
            "bacalao_compute_bid_refusals",
            "Asks this node refused, by the bid rule that refused them ('capacity': no room)",
            labels=["rule"],
        )
        for rule, count in sorted(self._node.refusals.items()):
            refusals.add_metric([rule], count)
        yield refusals
        capacity = self._node.capacity
        yield GaugeMetricFamily(
            "bacalao_compute_executions_running", "Runs under way", value=capacity.running_count
        )
        yield GaugeMetricFamily(
            "bacalao_compute_bids_open",
            "Bids holding a reservation until accepted or expired",
            value=capacity.reserved_count,
        )
        kinds = {
            "total": capacity.max_capacity,
            "reserved": capacity.reserved(),
            "allocated": capacity.allocated(),
            "free": capacity.available(),
        }
        cpu = GaugeMetricFamily("bacalao_compute_cpu", "CPU cores, by use", labels=["use"])
        memory = GaugeMetricFamily("bacalao_compute_memory_bytes", "Memory, by use", labels=["use"])
        for kind, resources in kinds.items():
            _add(cpu, memory, kind, resources)
        yield cpu
        yield memory


def _add(cpu: GaugeMetricFamily, memory: GaugeMetricFamily, use: str, res: Resources) -> None:
    cpu.add_metric([use], res.cpu)
    memory.add_metric([use], res.memory)
