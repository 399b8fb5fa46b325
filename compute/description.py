"""How a compute node describes itself: to requesters (its NodeInfo: the engines, publishers
and storage sources that answer now, its capacity, the largest job it takes) and to its own
bid rules (what it offers a job)."""

from __future__ import annotations

import logging
import threading
import time

from compute.bidding.base import BidRequest
from compute.capacity import CapacitySnapshot
from compute.config import ComputeConfig
from compute.runner import Plugins
from protocol.job import Job
from protocol.node import ComputeNodeInfo, NodeInfo, NodeType
from protocol.resources import Resources

log = logging.getLogger("bacalao.compute")

Installed = tuple[frozenset[str], frozenset[str], frozenset[str]]
"""The engines, publishers and storage sources that answer."""


class Description:
    def __init__(
        self, node_id: str, node_type: NodeType, config: ComputeConfig, plugins: Plugins
    ) -> None:
        self._node_id = node_id
        self._node_type = node_type
        self._config = config
        self._plugins = plugins
        self._lock = threading.Lock()
        self._installed: tuple[float, Installed] | None = None

    def described(self, snapshot: CapacitySnapshot) -> tuple[NodeInfo, list[str]]:
        """The NodeInfo of the node with capacity ``snapshot``, and the executions (reserved
        or running) its AvailableCapacity left out."""
        engines, publishers, sources = self.installed()
        info = NodeInfo(
            node_id=self._node_id,
            node_type=self._node_type,
            labels=self._config.labels,
            compute_node_info=ComputeNodeInfo(
                execution_engines=sorted(engines),
                publishers=sorted(publishers),
                storage_sources=sorted(sources),
                max_capacity=self._config.max_capacity,
                available_capacity=snapshot.available,
                max_job_requirements=self.max_job(),
                running_executions=snapshot.running_count,
                enqueued_executions=snapshot.reserved_count,
            ),
        )
        return info, sorted(snapshot.holders)

    def installed(self) -> Installed:
        """Engines, publishers and sources that answer now (a Docker daemon or an IPFS API
        may come and go), checked at most every ``installed_check_s``."""
        now = time.monotonic()
        with self._lock:
            cached = self._installed
            if cached is not None and now - cached[0] < self._config.installed_check_s:
                return cached[1]
        plugins = self._plugins
        installed = (
            frozenset(plugins.executors.installed()),
            frozenset(plugins.publishers.installed()),
            frozenset(plugins.storage.installed()),
        )
        with self._lock:
            if cached is not None and cached[1] != installed:
                log.info("event=plugins_changed installed=%s", installed)
            self._installed = (now, installed)
        return installed

    def bid_request(self, job: Job, needs: Resources) -> BidRequest:
        """What the bid rules decide ``job`` on: the job, what it would hold here, and what
        this node offers and allows."""
        engines, publishers, sources = self.installed()
        return BidRequest(
            job=job,
            resources=needs,
            node_labels=self._config.labels,
            engines=engines,
            publishers=publishers,
            storage_sources=sources,
            max_job_resources=self.max_job(),
            accept_networked_jobs=self._config.accept_networked_jobs,
            max_execution_timeout_s=self._config.max_execution_timeout_s,
        )

    def max_job(self) -> Resources:
        """The largest job the node takes: its configured limit, or all it has."""
        return self._config.max_job_resources or self._config.max_capacity
