"""``/metrics`` on the requester's API and on each compute node's results server: Prometheus'
own parser reads them, and their counters move as a job runs (a real in-process devstack)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.devstack import Devstack
from cli.stack import NodeOptions
from tests.support.api import run_job
from tests.support.jobs import noop_job
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the samples of ``name`` that have ``labels`` (among others)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Devstack]:
    options = NodeOptions(
        name="requester", data_dir=tmp_path / "stack", api_port=0, heartbeat_interval_s=0.2
    )
    with Devstack(options, compute_nodes=1) as running:
        yield running


def test_the_counters_move_when_a_job_runs(stack: Devstack) -> None:
    api = f"http://127.0.0.1:{stack.api_port}"
    (compute,) = stack.computes
    assert compute.local_publisher_url
    before = scrape(f"{api}/metrics")
    node_before = scrape(f"{compute.local_publisher_url}/metrics")
    assert value(before, "bacalao_jobs", state="completed") == 0
    assert value(before, "bacalao_nodes", connection="connected") >= 1

    with httpx.Client(base_url=api) as client:
        _, ended = run_job(client, noop_job())
    assert ended["State"]["StateType"] == "Completed"

    after = scrape(f"{api}/metrics")
    assert value(after, "bacalao_jobs", state="completed") == 1
    assert value(after, "bacalao_executions", state="Completed") == 1
    assert value(after, "bacalao_asks_total") == value(before, "bacalao_asks_total") + 1
    assert value(after, "bacalao_bids_total", outcome="accepted") == 1
    assert value(after, "bacalao_job_queue_seconds_count") == 1
    assert value(after, "bacalao_job_duration_seconds_count", state="completed") == 1
    assert value(after, "bacalao_store_transaction_seconds_count") > value(
        before, "bacalao_store_transaction_seconds_count"
    )
    received = value(after, "bacalao_messages_received_total", type="RunResult")
    assert received == 1
    assert value(after, "bacalao_messages_sent_total", type="AskForBid") == 1

    def compute_saw_it() -> Samples | None:
        node = scrape(f"{compute.local_publisher_url}/metrics")
        ran = value(node, "bacalao_execution_duration_seconds_count", engine="noop")
        return node if ran == 1 else None

    node = wait_until(compute_saw_it, 10, message="the compute node's run to be counted")
    assert value(node, "bacalao_compute_bids_total", outcome="accepted") == 1 + value(
        node_before, "bacalao_compute_bids_total", outcome="accepted"
    )
    assert value(node, "bacalao_messages_received_total", type="AskForBid") == 1
    assert value(node, "bacalao_compute_cpu", use="total") > 0
    assert value(node, "bacalao_compute_cpu", use="free") == value(
        node, "bacalao_compute_cpu", use="total"
    )
    assert value(node, "bacalao_compute_executions_running") == 0


def test_refusals_are_counted_by_the_rule_that_refused(stack: Devstack) -> None:
    """The compute node refuses networked jobs (its default): both sides count the refusal
    under the rule's name (the job stays queued for a node that would take it)."""
    api = f"http://127.0.0.1:{stack.api_port}"
    (compute,) = stack.computes
    assert compute.local_publisher_url
    networked = noop_job()
    networked["Tasks"][0]["Network"] = {"Type": "Full"}
    with httpx.Client(base_url=api) as client:
        answer = client.put("/api/v1/orchestrator/jobs", json={"Job": networked})
        assert answer.status_code == 200, answer.text

    def refused() -> Samples | None:
        samples = scrape(f"{api}/metrics")
        return samples if value(samples, "bacalao_bid_refusals_total") >= 1 else None

    requester = wait_until(refused, 20, message="the refusal to be counted")
    assert value(requester, "bacalao_bid_refusals_total", rule="network") >= 1
    assert value(requester, "bacalao_bid_refusals_total") == value(
        requester, "bacalao_bid_refusals_total", rule="network"
    )
    assert value(requester, "bacalao_bids_total", outcome="rejected") >= 1
    node = scrape(f"{compute.local_publisher_url}/metrics")
    assert value(node, "bacalao_compute_bid_refusals_total", rule="network") >= 1
    assert value(node, "bacalao_compute_bid_refusals_total", rule="capacity") == 0


def test_metrics_need_the_apis_token_when_it_has_one(tmp_path: Path) -> None:
    token = "metrics-token-0123456789abcdef"
    options = NodeOptions(
        name="requester", data_dir=tmp_path / "stack", api_port=0, api_tokens=(token,)
    )
    with Devstack(options, compute_nodes=0) as running:
        url = f"http://127.0.0.1:{running.api_port}/metrics"
        assert httpx.get(url).status_code == 401
        answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert "bacalao_jobs" in answer.text
