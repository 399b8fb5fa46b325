"""Bacalhau's own Python client, ``bacalhau-apiclient`` 1.4.1, against bacalao's API over HTTP
(and bacalao's own client, where the answer's shape changed for Bacalhau's sake).

The client writes its models with Bacalhau's keys and leaves out what is None; it reads each
response key by exact name, leaves enum-like values (job and execution states, history types)
as the raw JSON, and reads nodes from lowercase ``nodes``/``node`` keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from bacalhau_apiclient.api.ops_api import OpsApi
from bacalhau_apiclient.api.orchestrator_api import OrchestratorApi
from bacalhau_apiclient.api.utils_api import UtilsApi
from bacalhau_apiclient.api_client import ApiClient
from bacalhau_apiclient.configuration import Configuration
from bacalhau_apiclient.models.api_put_job_request import ApiPutJobRequest
from bacalhau_apiclient.models.job import Job as ApiJob
from bacalhau_apiclient.models.label_selector_requirement import LabelSelectorRequirement
from bacalhau_apiclient.models.resources_config import ResourcesConfig
from bacalhau_apiclient.models.spec_config import SpecConfig as ApiSpecConfig
from bacalhau_apiclient.models.task import Task as ApiTask
from bacalhau_apiclient.rest import ApiException

from cli.client import APIClient
from protocol.job import SpecConfig
from protocol.states import ExecutionStateType as E
from requester.api import create_app
from requester.server import APIServer
from requester.store import JobStore
from tests.unit.test_api import COMPLETED_PATH, FakeService, add_execution


@pytest.fixture
def service() -> Iterator[FakeService]:
    with JobStore(":memory:") as store:
        yield FakeService(store)


@pytest.fixture
def api_client(service: FakeService) -> Iterator[ApiClient]:
    server = APIServer(create_app(service), "127.0.0.1", 0)
    port = server.start()
    client = ApiClient(Configuration())
    client.configuration.host = f"http://127.0.0.1:{port}"
    try:
        yield client
    finally:
        client.rest_client.pool_manager.clear()
        server.stop()
        assert not server.running


def submit(api: OrchestratorApi) -> str:
    job = ApiJob(
        type="batch",
        count=1,
        labels={"team": "fish"},
        constraints=[LabelSelectorRequirement(key="zone", operator="in", values=["a"])],
        tasks=[
            ApiTask(
                name="main",
                engine=ApiSpecConfig(type="noop", params={"Sleep": 0}),
                resources=ResourcesConfig(cpu="500m", memory="64Mb"),
            )
        ],
    )
    answer = api.orchestratorput_job(ApiPutJobRequest(job=job, idempotency_token="once"))
    assert answer.evaluation_id.startswith("v-")
    assert answer.warnings == []
    job_id: str = answer.job_id
    return job_id


def test_put_get_and_list_jobs(api_client: ApiClient, service: FakeService) -> None:
    api = OrchestratorApi(api_client)
    job_id = submit(api)
    stored = service.store.get_job(job_id)
    assert stored.task.resources.memory == "64Mb"
    assert stored.constraints[0].values == ["a"]

    got = api.orchestratorget_job(job_id)
    assert got.job.id == job_id
    assert got.job.labels == {"team": "fish"}
    assert got.job.tasks[0].engine.type == "noop"
    assert got.job.tasks[0].resources.cpu == "500m"
    assert got.job.state.state_type == "Pending"
    assert got.history is None
    assert got.executions is None

    listed = api.orchestratorlist_jobs(namespace="default", limit=10, reverse=True)
    assert [job.id for job in listed.items] == [job_id]
    assert listed.next_token == ""


def test_executions_history_results_and_stop(api_client: ApiClient, service: FakeService) -> None:
    api = OrchestratorApi(api_client)
    job_id = submit(api)
    result = SpecConfig(type="local", params={"URL": "file:///tmp/result"})
    done = add_execution(service.store, job_id, "n-compute-1", *COMPLETED_PATH, result=result)

    executions = api.orchestratorjob_executions(job_id, "created_at").items
    assert [run.id for run in executions] == [done.id]
    assert executions[0].compute_state.state_type == int(E.COMPLETED) == 7
    assert executions[0].desired_state.state_type == 0
    assert executions[0].job is None
    assert executions[0].published_result.params == {"URL": "file:///tmp/result"}

    got = api.orchestratorget_job(job_id, include="executions")
    assert [run.id for run in got.executions.items] == [done.id]

    history = api.orchestratorjob_history(job_id, event_type="execution").items
    assert [entry.execution_state.new for entry in history] == [2, 3, 5, 10, 7]
    assert all(entry.type == "ExecutionLevel" for entry in history)
    assert history[-1].event.topic == "Execution"

    results = api.orchestratorjob_results(job_id).items
    assert [(spec.type, spec.params) for spec in results] == [("local", result.params)]

    rejected = add_execution(service.store, job_id, "n-compute-2", E.ASK_FOR_BID_REJECTED)
    by_state = api.orchestratorjob_executions(job_id, "state", reverse=True).items
    assert [run.id for run in by_state] == [done.id, rejected.id]
    latest_first = api.orchestratorjob_executions(job_id, "modify_time", reverse=True).items
    assert [run.id for run in latest_first] == [rejected.id, done.id]

    stopped = api.orchestratorstop_job(job_id, reason="enough")
    assert stopped.evaluation_id == "v-stop"
    assert service.stopped == [(job_id, "enough")]


def test_nodes_and_agent(api_client: ApiClient) -> None:
    api = OrchestratorApi(api_client)
    nodes = api.orchestratorlist_nodes().nodes
    assert [node.info.node_id for node in nodes] == ["n-compute-1", "n-compute-2", "n-requester"]
    assert nodes[0].info.labels == {"zone": "a"}
    assert api.orchestratorget_node("n-compute-2").node.info.node_id == "n-compute-2"

    def ids(**query: Any) -> list[str]:
        return [node.info.node_id for node in api.orchestratorlist_nodes(**query).nodes]

    # the client sends filter_approval and filter-status (Bacalhau's Go client: filter-approval)
    assert ids(filter_status="disconnected") == ["n-compute-2"]
    assert ids(filter_approval="APPROVED", order_by="type") == [
        "n-requester", "n-compute-1", "n-compute-2"
    ]  # fmt: skip
    assert ids(reverse=True) == ["n-requester", "n-compute-2", "n-compute-1"]
    first = api.orchestratorlist_nodes(limit=2)
    rest = api.orchestratorlist_nodes(limit=2, next_token=first.next_token)
    assert [node.info.node_id for node in first.nodes + rest.nodes] == ids()
    with pytest.raises(ApiException) as ambiguous:
        api.orchestratorget_node("n-compute")
    assert ambiguous.value.status == 409
    assert error_of(ambiguous)["Field"] == "id"

    ops = OpsApi(api_client)
    assert ops.agentnode().node_id == "n-requester"
    assert ops.agentversion().git_version.startswith("v")
    assert "OK" in ops.agentalive()
    # livez answers plain text "OK", as Bacalhau does; the client str()s the undecoded bytes.
    assert UtilsApi(api_client).livez() == "b'OK'"


def error_of(caught: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(caught.value.body)
    return body


def test_errors_reach_the_client_as_api_exceptions(api_client: ApiClient) -> None:
    api = OrchestratorApi(api_client)
    with pytest.raises(ApiException) as missing:
        api.orchestratorget_job("j-missing")
    assert missing.value.status == 404
    assert error_of(missing)["Code"] == 404

    bad = ApiJob(count=-1, tasks=[ApiTask(engine=ApiSpecConfig(type="noop"))])
    with pytest.raises(ApiException) as refused:
        api.orchestratorput_job(ApiPutJobRequest(job=bad))
    assert refused.value.status == 400
    assert error_of(refused)["Field"] == "Job.Count"


def test_server_reports_a_port_it_cannot_bind(service: FakeService) -> None:
    first = APIServer(create_app(service), "127.0.0.1", 0)
    port = first.start()
    try:
        second = APIServer(create_app(service), "127.0.0.1", port)
        with pytest.raises(RuntimeError, match="cannot listen"):
            second.start()
        assert not second.running
    finally:
        first.stop()


def test_bacalaos_own_client_reads_the_nodes_answer(service: FakeService) -> None:
    server = APIServer(create_app(service), "127.0.0.1", 0)
    port = server.start()
    try:
        with APIClient("127.0.0.1", port) as client:
            nodes = [state.info.node_id for state in client.nodes()]
            assert nodes == ["n-compute-1", "n-compute-2", "n-requester"]
            assert client.node("n-compute-2").connection == "DISCONNECTED"
    finally:
        server.stop()
