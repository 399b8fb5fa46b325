"""The requester's Prometheus metrics: jobs, executions and nodes by state, how long jobs wait
and run, what the scheduler asked and heard, and what the store costs.

States and counts are read from the store and the node table when scraped (two indexed
``GROUP BY`` queries); durations are observed as jobs change state, through the store's
listener, and transaction times through its timer.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from protocol.job import Job, JobStateType
from protocol.node import NodeConnection
from protocol.states import ExecutionStateType
from requester.orchestrator import Orchestrator

# From a millisecond (a noop job on one host) to a day (a job's default longest run).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600, 86400)
STORE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
WAITING = (JobStateType.PENDING, JobStateType.QUEUED)


class RequesterMetrics(Collector):
    """Registered in ``registry``; hooks itself to the orchestrator's store."""

    def __init__(self, orchestrator: Orchestrator, registry: CollectorRegistry) -> None:
        self._orchestrator = orchestrator
        self.queue_seconds = Histogram(
            "bacalao_job_queue_seconds",
            "From a job's submission until it leaves Pending/Queued (it runs, or it ends: "
            "refused by every node, stopped, or run to its end between two scheduler passes)",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.job_seconds = Histogram(
            "bacalao_job_duration_seconds",
            "From a job's submission until it ends, by how it ended",
            labelnames=["state"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.store_seconds = Histogram(
            "bacalao_store_transaction_seconds",
            "Time a write transaction of the job store held the writer, COMMIT included",
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        store = orchestrator.store
        store.on_job_state(self._job_state)
        store.on_transaction(self.store_seconds.observe)
        registry.register(self)

    def _job_state(self, before: JobStateType, job: Job) -> None:
        seconds = max(0.0, (job.modify_time - job.create_time) / 1e9)
        state = job.state.state_type
        if before in WAITING and state not in WAITING:
            self.queue_seconds.observe(seconds)
        if job.terminal:
            self.job_seconds.labels(state=state.value.lower()).observe(seconds)

    def collect(self) -> Iterable[Metric]:
        store = self._orchestrator.store
        jobs, executions = store.count_by_state()
        family = GaugeMetricFamily("bacalao_jobs", "Jobs in the store, by state", labels=["state"])
        for job_state in JobStateType:
            if job_state is not JobStateType.UNDEFINED:
                family.add_metric([job_state.value.lower()], jobs.get(job_state.value, 0))
        yield family
        family = GaugeMetricFamily(
            "bacalao_executions", "Executions in the store, by state", labels=["state"]
        )
        for execution_state in ExecutionStateType:
            if execution_state is not ExecutionStateType.UNDEFINED:
                count = executions.get(int(execution_state), 0)
                family.add_metric([execution_state.label], count)
        yield family
        family = GaugeMetricFamily(
            "bacalao_nodes", "Nodes this requester knows, by connection", labels=["connection"]
        )
        states = self._orchestrator.node_table.states()
        for connection in NodeConnection:
            count = sum(1 for state in states if state.connection == connection)
            family.add_metric([connection.value.lower()], count)
        yield family
        yield from self._counters()

    def _counters(self) -> Iterable[Metric]:
        counts = self._orchestrator.counts
        family = CounterMetricFamily(
            "bacalao_bids", "Answers to this requester's asks, by outcome", labels=["outcome"]
        )
        for outcome in ("accepted", "rejected", "busy"):
            family.add_metric([outcome], counts.get(f"bid_{outcome}", 0))
        yield family
        refusals = CounterMetricFamily(
            "bacalao_bid_refusals",
            "Refused asks, by what the node said refused them: its bid rule, 'capacity' when "
            "it had no room",
            labels=["rule"],
        )
        for rule, count in sorted(self._orchestrator.refusals.items()):
            refusals.add_metric([rule], count)
        yield refusals
        yield CounterMetricFamily(
            "bacalao_asks", "Asks for bids sent to compute nodes", value=counts.get("asked", 0)
        )
        debug = self._orchestrator.debug()
        worker = debug["Orchestrator"]
        yield CounterMetricFamily(
            "bacalao_scheduler_passes", "Passes of the scheduler", value=worker["Passes"]
        )
        yield CounterMetricFamily(
            "bacalao_scheduler_evaluations", "Jobs evaluated", value=worker["Evaluations"]
        )
        yield GaugeMetricFamily(
            "bacalao_jobs_waiting_for_room",
            "Jobs queued until a node has room for them",
            value=worker["Queued"],
        )
        stats = debug["Store"]
        yield CounterMetricFamily(
            "bacalao_store_transactions", "Write transactions", value=stats["Transactions"]
        )
        yield CounterMetricFamily(
            "bacalao_store_statements", "SQL statements on the writer", value=stats["Statements"]
        )
