"""The requester's HTTP API over a fake orchestrator and a real in-memory job store."""

from __future__ import annotations

import base64
import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI

from protocol.errors import NotFoundError, StateTransitionError, ValidationError
from protocol.execution import ComputeState, Execution
from protocol.ids import new_evaluation_id, new_execution_id, new_job_id
from protocol.job import Job, SpecConfig
from protocol.node import ComputeNodeInfo, NodeConnection, NodeInfo, NodeState, NodeType
from protocol.resources import Resources
from protocol.specs import validate_job
from protocol.states import ExecutionStateType
from requester.api import create_app
from requester.api_body import MAX_BODY_BYTES
from requester.api_errors import install_error_handlers
from requester.api_query import page, parse_bool, parse_label_selector, reading
from requester.service import SubmitResult
from requester.store import JobStore

with warnings.catch_warnings():
    # Starlette asks for httpx2 but still works with httpx; nothing else is silenced.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

E = ExecutionStateType
JOBS = "/api/v1/orchestrator/jobs"
NODES = "/api/v1/orchestrator/nodes"
NOOP_TASK = {"Name": "main", "Engine": {"Type": "noop"}}


class FakeService:
    """The OrchestratorService contract, without scheduling: submit validates and stores."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self.info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        self.others = [
            NodeState(info=NodeInfo(node_id="n-compute-1", labels={"zone": "a"})),
            NodeState(info=NodeInfo(node_id="n-compute-2"), connection=NodeConnection.DISCONNECTED),
        ]
        self.stopped: list[tuple[str, str]] = []
        self.stop_error: Exception | None = None

    @property
    def store(self) -> JobStore:
        return self._store

    def submit(self, job: Job) -> SubmitResult:
        found = validate_job(job)
        job.id = new_job_id()
        evaluation_id = new_evaluation_id()
        self._store.create_job(job, evaluation_id)
        return SubmitResult(job.id, evaluation_id, found)

    def stop(self, job_id: str, reason: str) -> str:
        if self.stop_error is not None:
            raise self.stop_error
        self.stopped.append((job_id, reason))
        return "v-stop"

    def nodes(self) -> list[NodeState]:
        return [NodeState(info=self.info), *self.others]

    def self_info(self) -> NodeInfo:
        return self.info

    def debug(self) -> dict[str, Any]:
        return {"Store": self.store.stats()}


def add_job(store: JobStore, namespace: str = "default", **labels: str) -> Job:
    job = Job.from_wire(
        {"ID": new_job_id(), "Namespace": namespace, "Labels": labels, "Tasks": [NOOP_TASK]}
    )
    return store.create_job(job, new_evaluation_id())


def add_execution(
    store: JobStore, job_id: str, node_id: str, *states: E, result: SpecConfig | None = None
) -> Execution:
    """A new execution walked through ``states``; the last one gets ``result``."""
    execution = store.create_execution(
        Execution(
            id=new_execution_id(),
            job_id=job_id,
            node_id=node_id,
            compute_state=ComputeState(state_type=E.ASK_FOR_BID),
        )
    )
    for index, state in enumerate(states):
        last = index == len(states) - 1
        execution = store.update_execution(
            execution.id, state=state, published_result=result if last else None
        )
    return execution


COMPLETED_PATH = (E.ASK_FOR_BID_ACCEPTED, E.BID_ACCEPTED, E.RUNNING, E.COMPLETED)


@pytest.fixture
def store() -> Iterator[JobStore]:
    with JobStore(":memory:") as opened:
        yield opened


@pytest.fixture
def service(store: JobStore) -> FakeService:
    return FakeService(store)


@pytest.fixture
def client(service: FakeService) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as opened:
        yield opened


def assert_error(response: Any, status: int, field: str = "") -> dict[str, Any]:
    """An error as Bacalhau 1.4's Go client decodes it (``apimodels.APIError``: ``code`` int,
    ``message`` string, keys matched without regard to case), plus our ``Field``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) <= {"Code", "Message", "Field"}
    assert type(body["Code"]) is int
    assert body["Code"] == status
    assert isinstance(body["Message"], str)
    assert body["Message"]
    assert body.get("Field", "") == field
    if field:
        assert body["Message"].startswith(f"{field}: ")
    return body


# -- PUT /jobs --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_put_job_stores_the_job_and_answers_ids(
    client: TestClient, store: JobStore, method: str
) -> None:
    body = {
        "job": {"count": 2, "tasks": [{"engine": {"type": "NOOP"}}]},
        "idempotencyToken": "t",
        "credential": {"scheme": "bearer"},
        "namespace": "x",
    }
    response = client.request(method, JOBS, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"JobID", "EvaluationID", "Warnings"}
    assert answer["JobID"].startswith("j-")
    assert answer["EvaluationID"].startswith("v-")
    assert answer["Warnings"] == []
    stored = store.get_job(answer["JobID"])
    assert stored.count == 2
    assert stored.task.engine.type == "noop"


def test_put_job_returns_the_service_warnings(client: TestClient) -> None:
    task = {**NOOP_TASK, "ResultPaths": [{"Name": "out", "Path": "/out"}]}
    response = client.put(JOBS, json={"Job": {"Tasks": [task]}})
    assert response.status_code == 200
    assert response.json()["Warnings"] == [
        "ResultPaths are set but the noop publisher discards results"
    ]


def job_with(**fields: Any) -> dict[str, Any]:
    return {"Job": {"Tasks": [NOOP_TASK], **fields}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"{}", "Job"),
        ({"Job": None}, "Job"),
        ({"Job": "a job"}, "Job"),
        (job_with(Count=-1), "Job.Count"),
        (job_with(Count="abc"), "Job.Count"),
        (job_with(Tasks=[]), "Job.Tasks"),
        ({"Job": {"Type": "batch"}}, "Job.Tasks"),
        (job_with(Tasks=[{"Engine": {"Type": "podman"}}]), "Job.Tasks[0].Engine.Type"),
        (
            job_with(Constraints=[{"Key": "a", "Operator": "like", "Values": ["b"]}]),
            "Job.Constraints[0].Operator",
        ),
    ],
)
def test_bad_job_is_a_400_naming_the_field(
    client: TestClient, store: JobStore, body: bytes | dict[str, Any], field: str
) -> None:
    if isinstance(body, bytes):
        response = client.put(JOBS, content=body, headers={"Content-Type": "application/json"})
    else:
        response = client.put(JOBS, json=body)
    assert_error(response, 400, field)
    assert store.list_jobs() == ([], "")


# -- GET /jobs --------------------------------------------------------------------------------


def listed_ids(client: TestClient, query: str) -> list[str]:
    response = client.get(f"{JOBS}?{query}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"Items", "NextToken"}
    return [item["ID"] for item in body["Items"]]


def test_list_jobs_filters_by_labels_given_repeated_or_comma_separated(
    client: TestClient, store: JobStore
) -> None:
    both = add_job(store, env="prod", team="a").id
    add_job(store, env="prod", team="b")
    add_job(store, env="dev", team="a")
    assert listed_ids(client, "labels=env=prod&labels=team=a") == [both]
    assert listed_ids(client, "labels=env%3D%3Dprod,team%3Da") == [both]
    assert listed_ids(client, "labels=env+in+(prod),team=a") == [both]
    assert len(listed_ids(client, "labels=env=prod")) == 2


def test_list_jobs_filters_by_kubernetes_selectors(client: TestClient, store: JobStore) -> None:
    prod = add_job(store, env="prod", gpu="yes").id
    dev = add_job(store, env="dev").id
    test = add_job(store, env="test", spot="true").id
    bare = add_job(store).id
    assert listed_ids(client, "labels=env+in+(prod,dev)") == [prod, dev]
    assert listed_ids(client, "labels=env!%3Dprod") == [dev, test, bare]
    assert listed_ids(client, "labels=env+notin+(dev,test)") == [prod, bare]
    assert listed_ids(client, "labels=env") == [prod, dev, test]
    assert listed_ids(client, "labels=!env") == [bare]
    assert listed_ids(client, "labels=env,!spot,env!%3Ddev") == [prod]
    assert listed_ids(client, "labels=env!%3Dprod&labels=!spot") == [dev, bare]
    assert listed_ids(client, "labels=env=prod,env=dev") == []
    assert listed_ids(client, "labels=") == [prod, dev, test, bare]


@pytest.mark.parametrize(
    "labels", ["a=(", "env=prod,,x=y", "env+in+()", "=x", "env>abc", "env+in+(a,,b)"]
)
def test_list_jobs_refuses_label_selectors_it_cannot_parse(client: TestClient, labels: str) -> None:
    assert_error(client.get(f"{JOBS}?labels={labels}"), 400, "labels")


def test_list_jobs_pages_a_label_selection_once_each(client: TestClient, store: JobStore) -> None:
    jobs = [add_job(store, env=("prod", "dev", "test")[index % 3]) for index in range(17)]
    wanted = [job.id for job in jobs if job.labels["env"] != "dev"]
    for reverse in ("false", "true"):
        seen: list[str] = []
        token = ""
        for _ in range(len(jobs)):
            query = f"labels=env!%3Ddev&limit=3&reverse={reverse}&next_token={token}"
            body = client.get(f"{JOBS}?{query}").json()
            assert len(body["Items"]) == 3 or not body["NextToken"]
            seen += [item["ID"] for item in body["Items"]]
            token = body["NextToken"]
            if not token:
                break
        assert seen == (wanted if reverse == "false" else wanted[::-1])


def test_list_jobs_star_namespace_means_every_namespace(
    client: TestClient, store: JobStore
) -> None:
    mine = add_job(store).id
    theirs = add_job(store, namespace="other").id
    assert listed_ids(client, "namespace=*") == [mine, theirs]
    assert listed_ids(client, "namespace=other") == [theirs]


def test_list_jobs_pages_orders_and_filters_by_namespace(
    client: TestClient, store: JobStore
) -> None:
    ids = [add_job(store).id for _ in range(3)]
    other = add_job(store, namespace="other").id
    assert listed_ids(client, "namespace=default") == ids
    assert listed_ids(client, "") == [*ids, other]
    assert listed_ids(client, "namespace=default&reverse=True") == ids[::-1]
    first = client.get(f"{JOBS}?namespace=default&limit=2").json()
    assert [item["ID"] for item in first["Items"]] == ids[:2]
    assert first["NextToken"]
    rest = listed_ids(client, f"namespace=default&limit=2&next_token={first['NextToken']}")
    assert rest == ids[2:]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("limit=10000000000000000000000000", "limit"),
        ("limit=4294967296", "limit"),
        ("limit=1_000", "limit"),
        ("limit=%D9%A3", "limit"),
        ("reverse=maybe", "reverse"),
        ("order_by=size", "order_by"),
        ("next_token=%C2%B2", "next_token"),
    ],
)
def test_list_jobs_bad_query_is_a_400(client: TestClient, query: str, field: str) -> None:
    assert_error(client.get(f"{JOBS}?{query}"), 400, field)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param('{"Job": {"Meta": ' + nested(5000) + "}}", "body", id="too-deep-to-parse"),
        pytest.param('{"Job": {"Meta": ' + nested(150) + "}}", "Job.Meta", id="too-deep"),
        pytest.param(
            '{"Job": {"Tasks": [{"Engine": {"Type": "noop", "Params": {"a": '
            + nested(300)
            + "}}}]}}",
            "Job.Tasks[0].Engine.Params.a",
            id="params-too-deep-to-store",
        ),
        pytest.param(
            '{"Job": {"Name": "\\ud800", "Tasks": [{"Engine": {"Type": "noop"}}]}}',
            "Job.Name",
            id="surrogate",
        ),
        pytest.param(
            '{"Job": {"Labels": {"\\udfff": "x"}, "Tasks": []}}', "Job.Labels", id="surrogate-key"
        ),
        pytest.param(
            '{"Job": {"Count": 100000000000000000000, "Tasks": []}}', "Job.Count", id="int64"
        ),
        pytest.param('{"Job": {"Count": NaN, "Tasks": []}}', "body", id="nan"),
        pytest.param('{"Job": {"Count": -Infinity, "Tasks": []}}', "body", id="infinity"),
        pytest.param(b'{"Job": {"Name": "\xff"}}', "body", id="not-utf8"),
    ],
)
def test_malformed_job_body_is_a_400_naming_where(
    client: TestClient, store: JobStore, body: str | bytes, field: str
) -> None:
    response = client.put(JOBS, content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, field)
    assert store.list_jobs() == ([], "")


def test_a_parser_that_fails_unexpectedly_still_answers_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(cls: type[Job], data: Any, *, prefix: str = "") -> Job:
        raise TypeError("unhashable type: 'dict'")

    monkeypatch.setattr(Job, "from_wire", classmethod(broken))
    with caplog.at_level(logging.WARNING, logger="bacalao.api"):
        body = assert_error(client.put(JOBS, json=job_with()), 400, "Job")
    assert "TypeError" in body["Message"]
    assert any("event=api_unreadable" in r.getMessage() for r in caplog.records)


def forged_token(*fields: Any) -> str:
    raw = json.dumps(list(fields)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


NASTY_VALUES = [
    "", " ", "-1", "+1", "0", "1e3", "0x10", "1_000", "\u00b2", "\u0663", "9" * 30, "9" * 5000,
    "\x00", "%", "*", "(", ")", "a=(", "!", "!!a", "a in (", "a in ()", "a notin (b,)", "a>b",
    "=", ",", "true", "null", "[]", "{}", "'", '"', "\\", "\u00e9", "\U0001f4a5", "a" * 5000,
    forged_token("created_at", False, 10**30, "j-x"),
    forged_token("created_at", False, True, "j-x"),
    forged_token("created_at", False, "text", "j-x"),
    forged_token("id", False, 5, "j-x"),
    forged_token("created_at", False, 1, "\ud800"),
    forged_token("created_at", False, 1),
]  # fmt: skip


def test_no_malformed_query_gets_a_500(client: TestClient, store: JobStore) -> None:
    job = add_job(store)
    add_execution(store, job.id, "n-a")
    endpoints = {
        JOBS: ["namespace", "limit", "next_token", "order_by", "reverse", "labels"],
        f"{JOBS}/{job.id}": ["include", "limit"],
        f"{JOBS}/{job.id}/executions": ["order_by", "reverse", "limit", "next_token"],
        f"{JOBS}/{job.id}/history": ["since", "event_type", "execution_id", "limit"],
        NODES: ["limit", "next_token", "order_by", "reverse", "labels", "filter-status",
                "filter_status", "filter-approval", "filter_approval"],
    }  # fmt: skip
    for path, names in endpoints.items():
        for name in names:
            for value in NASTY_VALUES:
                response = client.get(path, params={name: value})
                assert response.status_code < 500, (path, name, value[:50], response.text)
                if response.status_code >= 400:
                    assert_error(response, 400, response.json().get("Field", ""))
    for value in NASTY_VALUES:
        quoted = quote(value, safe="")
        for path in (f"{JOBS}/{quoted}", f"{JOBS}/{quoted}/history", f"{NODES}/{quoted}"):
            response = client.get(path)
            assert response.status_code in (200, 400, 404, 409), (path, response.text)


# -- GET /jobs/{id} and DELETE ----------------------------------------------------------------


def test_get_job_includes_only_what_is_asked(client: TestClient, store: JobStore) -> None:
    job = add_job(store)
    run = add_execution(store, job.id, "n-compute-1")
    plain = client.get(f"{JOBS}/{job.id}").json()
    assert set(plain) == {"Job"}
    assert plain["Job"]["ID"] == job.id
    assert plain["Job"]["State"]["StateType"] == "Pending"
    history = client.get(f"{JOBS}/{job.id}?include=history").json()
    assert set(history) == {"Job", "History"}
    assert history["History"]["Items"][0]["JobState"]["New"] == "Pending"
    both = client.get(f"{JOBS}/{job.id[:12]}?include=executions,history").json()
    assert set(both) == {"Job", "History", "Executions"}
    assert [item["ID"] for item in both["Executions"]["Items"]] == [run.id]
    limited = client.get(f"{JOBS}/{job.id}?include=history&limit=1").json()["History"]
    assert len(limited["Items"]) == 1
    assert limited["NextToken"]
    assert_error(client.get(f"{JOBS}/{job.id}?include=logs"), 400, "include")


def test_unknown_job_is_a_404_everywhere(client: TestClient) -> None:
    for suffix in ("", "/executions", "/history", "/results"):
        body = assert_error(client.get(f"{JOBS}/j-missing{suffix}"), 404)
        assert "j-missing" in body["Message"]
    assert_error(client.delete(f"{JOBS}/j-missing"), 404)


def test_delete_stops_the_job_by_its_full_id(
    client: TestClient, store: JobStore, service: FakeService
) -> None:
    job = add_job(store)
    response = client.delete(f"{JOBS}/{job.id[:10]}?reason=changed+my+mind")
    assert response.status_code == 200
    assert response.json() == {"EvaluationID": "v-stop"}
    assert service.stopped == [(job.id, "changed my mind")]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationError("id", "job already ended"), 400),
        (StateTransitionError("job cannot go from Completed to Stopped"), 409),
    ],
)
def test_delete_reports_what_the_service_refuses(
    client: TestClient, store: JobStore, service: FakeService, error: Exception, status: int
) -> None:
    service.stop_error = error
    body = assert_error(
        client.delete(f"{JOBS}/{add_job(store).id}"), status, getattr(error, "field", "")
    )
    assert body["Message"] == str(error)


# -- executions, history, results --------------------------------------------------------------


def test_executions_without_job_with_integer_states_ordered_and_paged(
    client: TestClient, store: JobStore
) -> None:
    job = add_job(store)
    first = add_execution(store, job.id, "n-b", *COMPLETED_PATH)
    second = add_execution(store, job.id, "n-a", E.ASK_FOR_BID_REJECTED)
    body = client.get(f"{JOBS}/{job.id}/executions").json()
    assert body["NextToken"] == ""
    assert [item["ID"] for item in body["Items"]] == [first.id, second.id]
    assert [item["ComputeState"]["StateType"] for item in body["Items"]] == [7, 4]
    assert all(item["Job"] is None for item in body["Items"])
    by_node = client.get(f"{JOBS}/{job.id}/executions?order_by=node_id").json()["Items"]
    assert [item["NodeID"] for item in by_node] == ["n-a", "n-b"]
    newest = client.get(f"{JOBS}/{job.id}/executions?reverse=true&limit=1").json()
    assert [item["ID"] for item in newest["Items"]] == [second.id]
    rest = client.get(f"{JOBS}/{job.id}/executions?reverse=true&next_token={newest['NextToken']}")
    assert [item["ID"] for item in rest.json()["Items"]] == [first.id]
    assert_error(client.get(f"{JOBS}/{job.id}/executions?order_by=size"), 400, "order_by")
    assert_error(client.get(f"{JOBS}/{job.id}/executions?next_token=zz"), 400, "next_token")


def test_executions_are_ordered_by_modify_time_unless_asked_otherwise(
    client: TestClient, store: JobStore
) -> None:
    job = add_job(store)
    older = add_execution(store, job.id, "n-a")
    newer = add_execution(store, job.id, "n-b", E.ASK_FOR_BID_ACCEPTED, E.BID_ACCEPTED)
    store.update_execution(older.id, state=E.ASK_FOR_BID_REJECTED)  # now the last modified

    def ids(query: str = "") -> list[str]:
        response = client.get(f"{JOBS}/{job.id}/executions?{query}")
        assert response.status_code == 200, response.text
        return [item["ID"] for item in response.json()["Items"]]

    assert ids() == [newer.id, older.id]
    assert ids("order_by=modify_time&reverse=true") == [older.id, newer.id]
    assert ids("order_by=create_time") == [older.id, newer.id]
    assert ids("order_by=state") == [older.id, newer.id]  # BidRejected 4 < BidAccepted 5
    assert ids("order_by=state&reverse=1") == [newer.id, older.id]
    assert ids("order_by=id") == sorted([older.id, newer.id])


def test_history_filters_by_type_execution_node_and_since(
    client: TestClient, store: JobStore
) -> None:
    job = add_job(store)
    run = add_execution(store, job.id, "n-a", E.ASK_FOR_BID_ACCEPTED)
    add_execution(store, job.id, "n-b")

    def history(query: str = "") -> list[dict[str, Any]]:
        response = client.get(f"{JOBS}/{job.id}/history?{query}")
        assert response.status_code == 200, response.text
        assert response.json()["NextToken"] == ""
        items: list[dict[str, Any]] = response.json()["Items"]
        return items

    assert [entry["Type"] for entry in history()] == ["JobLevel"] + ["ExecutionLevel"] * 3
    assert [entry["Type"] for entry in history("event_type=job")] == ["JobLevel"]
    assert len(history("event_type=execution")) == 3
    assert [e["ExecutionState"]["New"] for e in history(f"execution_id={run.id}")] == [2, 3]
    assert {entry["NodeID"] for entry in history("node_id=n-b")} == {"n-b"}
    assert history("since=4102444800") == []  # 2100-01-01, in Unix seconds
    assert_error(client.get(f"{JOBS}/{job.id}/history?event_type=nodes"), 400, "event_type")
    assert_error(client.get(f"{JOBS}/{job.id}/history?since=yesterday"), 400, "since")
    assert_error(client.get(f"{JOBS}/{job.id}/history?since=10000000000"), 400, "since")
    assert history("since=9223372036") == []  # the last second an int64 of ns can hold


def test_results_lists_the_published_result_of_completed_executions(
    client: TestClient, store: JobStore
) -> None:
    job = add_job(store)
    local = SpecConfig(type="local", params={"URL": "file:///tmp/r1"})
    add_execution(store, job.id, "n-a", *COMPLETED_PATH, result=local)
    add_execution(store, job.id, "n-b", *COMPLETED_PATH)
    add_execution(store, job.id, "n-c", *COMPLETED_PATH[:-1], E.FAILED)
    body = client.get(f"{JOBS}/{job.id}/results").json()
    assert body == {
        "Items": [{"Type": "local", "Params": {"URL": "file:///tmp/r1"}}],
        "NextToken": "",
    }


# -- nodes and agent ---------------------------------------------------------------------------


def node_ids(client: TestClient, query: str = "") -> list[str]:
    response = client.get(f"{NODES}?{query}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"Nodes", "NextToken", "nodes"}
    assert body["nodes"] == body["Nodes"]
    return [item["Info"]["NodeID"] for item in body["Nodes"]]


def test_nodes_list_and_get(client: TestClient) -> None:
    body = client.get(NODES).json()
    assert set(body) == {"Nodes", "NextToken", "nodes"}
    ids = [item["Info"]["NodeID"] for item in body["Nodes"]]
    assert ids == ["n-compute-1", "n-compute-2", "n-requester"]
    assert body["nodes"] == body["Nodes"]
    assert body["NextToken"] == ""
    assert body["Nodes"][1]["Connection"] == "DISCONNECTED"
    paged = client.get(f"{NODES}?limit=2").json()
    assert len(paged["Nodes"]) == 2
    assert paged["NextToken"]
    rest = client.get(f"{NODES}?limit=2&next_token={paged['NextToken']}").json()
    assert [item["Info"]["NodeID"] for item in paged["Nodes"] + rest["Nodes"]] == ids
    node = client.get(f"{NODES}/n-compute-1").json()
    assert node["Node"]["Info"]["Labels"] == {"zone": "a"}
    assert node["node"] == node["Node"]
    assert_error(client.get(f"{NODES}/n-nowhere"), 404)


def compute_node(node_id: str, cpu: float, memory: int, **labels: str) -> NodeState:
    free = Resources(cpu=cpu, memory=memory)
    compute = ComputeNodeInfo(available_capacity=free, max_capacity=free)
    return NodeState(info=NodeInfo(node_id=node_id, labels=labels, compute_node_info=compute))


def test_nodes_list_filters_and_orders_as_bacalhau(
    client: TestClient, service: FakeService
) -> None:
    service.others = [
        compute_node("n-big", 8, 1 << 30, zone="a", gpu="yes"),
        compute_node("n-small", 1, 4 << 30, zone="b"),
        NodeState(
            info=NodeInfo(node_id="n-gone", labels={"zone": "a"}),
            connection=NodeConnection.DISCONNECTED,
        ),
    ]
    assert node_ids(client) == ["n-big", "n-gone", "n-requester", "n-small"]
    assert node_ids(client, "labels=zone=a") == ["n-big", "n-gone"]
    assert node_ids(client, "labels=zone+in+(a,b),!gpu") == ["n-gone", "n-small"]
    assert node_ids(client, "labels=zone!%3Da") == ["n-requester", "n-small"]
    assert node_ids(client, "filter-status=disconnected") == ["n-gone"]
    assert node_ids(client, "filter_status=CONNECTED&labels=zone") == ["n-big", "n-small"]
    assert node_ids(client, "filter-approval=approved&limit=1") == ["n-big"]
    assert node_ids(client, "filter_approval=PENDING") == []
    assert node_ids(client, "order_by=available_cpu") == [
        "n-big", "n-small", "n-gone", "n-requester"
    ]  # fmt: skip
    assert node_ids(client, "order_by=available_memory")[:2] == ["n-small", "n-big"]
    assert node_ids(client, "order_by=available_memory&reverse=true")[-2:] == ["n-big", "n-small"]
    assert node_ids(client, "order_by=type")[0] == "n-requester"
    assert node_ids(client, "order_by=status")[0] == "n-big"
    assert node_ids(client, "order_by=id&reverse=true") == [
        "n-small", "n-requester", "n-gone", "n-big"
    ]  # fmt: skip
    assert_error(client.get(f"{NODES}?order_by=size"), 400, "order_by")
    assert_error(client.get(f"{NODES}?filter-status=asleep"), 400, "filter-status")
    assert_error(client.get(f"{NODES}?filter_approval=maybe"), 400, "filter_approval")
    assert_error(client.get(f"{NODES}?labels=zone+in+(a"), 400, "labels")
    assert_error(client.get(f"{NODES}?limit=4294967296"), 400, "limit")


def test_node_prefix_must_name_one_node(client: TestClient, service: FakeService) -> None:
    service.others = [compute_node(f"n-compute-{n}", 1, 1) for n in ("1", "10", "2")]
    body = assert_error(client.get(f"{NODES}/n-"), 409, "id")
    assert "matches 4 nodes" in body["Message"]
    assert_error(client.get(f"{NODES}/n-compute"), 409, "id")
    got = client.get(f"{NODES}/n-compute-1").json()  # exact, though also a prefix of -10
    assert got["Node"]["Info"]["NodeID"] == "n-compute-1"
    assert client.get(f"{NODES}/n-compute-2").json()["Node"]["Info"]["NodeID"] == "n-compute-2"
    assert client.get(f"{NODES}/n-req").json()["Node"]["Info"]["NodeID"] == "n-requester"


def test_agent_endpoints(client: TestClient) -> None:
    assert client.get("/api/v1/agent/alive").json() == {"Status": "OK"}
    version = client.get("/api/v1/agent/version").json()
    assert version["Version"]["GitVersion"].startswith("v")
    assert version["GitVersion"] == version["Version"]["GitVersion"]
    node = client.get("/api/v1/agent/node").json()
    assert node["NodeInfo"]["NodeID"] == "n-requester"
    assert node["NodeInfo"]["NodeType"] == "Requester"
    assert node["NodeID"] == "n-requester"
    assert client.get("/api/v1/healthz").json() == {"Status": "OK"}
    livez = client.get("/api/v1/livez")
    assert (livez.status_code, livez.text) == (200, "OK")


# -- errors ------------------------------------------------------------------------------------


def test_unexpected_error_is_a_logged_500_without_details(
    client: TestClient, store: JobStore, service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    service.stop_error = KeyError("secret internals")
    with caplog.at_level(logging.ERROR, logger="bacalao.api"):
        response = client.delete(f"{JOBS}/{add_job(store).id}")
    assert response.status_code == 500
    assert response.json() == {"Code": 500, "Message": "internal error: KeyError"}
    [record] = [r for r in caplog.records if "event=api_internal_error" in r.getMessage()]
    assert record.exc_info is not None
    assert "error_type=KeyError" in record.getMessage()


def test_routing_errors_and_fastapi_parameter_errors_use_the_same_shape() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/typed", response_model=None)
    def typed(count: int) -> dict[str, int]:
        return {"count": count}

    with TestClient(app) as client:
        assert client.get("/typed?count=2").json() == {"count": 2}
        assert_error(client.get("/typed?count=x"), 400, "count")
        assert_error(client.get("/typed"), 400, "count")
        assert_error(client.get("/nowhere"), 404)
        assert_error(client.post("/typed"), 405)


# -- query parsing -----------------------------------------------------------------------------


def test_parse_label_selector_and_bool() -> None:
    parsed = parse_label_selector(["a=1,b!=2", "c in (3, 4)", "!d"])
    assert [(r.key, r.operator, r.values) for r in parsed] == [
        ("a", "=", ["1"]),
        ("b", "!=", ["2"]),
        ("c", "in", ["3", "4"]),
        ("d", "!", []),
    ]
    assert parse_label_selector([]) == []
    with pytest.raises(ValidationError) as caught:
        parse_label_selector(["env in (a"])
    assert caught.value.field == "labels"
    assert [parse_bool(v, "x") for v in ("TRUE", "1", "yes", "", None, "False", "0")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_reading_turns_any_failure_into_a_validation_error_naming_the_field() -> None:
    for failure in (OverflowError("big"), RecursionError(), TypeError("x"), KeyError("k")):
        with pytest.raises(ValidationError) as caught, reading("limit"):
            raise failure
        assert caught.value.field == "limit"
        assert type(failure).__name__ in caught.value.problem
    with pytest.raises(NotFoundError), reading("limit"):
        raise NotFoundError("job j-1 not found")


def test_page_walks_a_list_with_offset_tokens() -> None:
    items = list(range(5))
    assert page(items, limit=0, next_token="") == (items, "")
    assert page(items, limit=2, next_token="") == ([0, 1], "2")
    assert page(items, limit=2, next_token="4") == ([4], "")
    assert page(items, limit=5, next_token="") == (items, "")
    for bad in ("6", "-1", "x", "\u00b2", "\u0663", "9" * 5000):
        with pytest.raises(ValidationError) as caught:
            page(items, limit=2, next_token=bad)
        assert caught.value.field == "next_token"


def test_a_body_over_the_limit_is_a_413_before_it_is_read_whole(
    client: TestClient, store: JobStore
) -> None:
    huge = b'{"Job": {"Meta": {"x": "' + b"a" * (MAX_BODY_BYTES + 1) + b'"}}}'
    answer = client.put(JOBS, content=huge)
    assert answer.status_code == 413
    assert answer.json()["Field"] == "body"
    assert "over the" in answer.json()["Message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"Job": {"Meta": {"x": "'
        for _ in range(MAX_BODY_BYTES // (1 << 20) + 1):
            yield b"a" * (1 << 20)

    streamed = client.put(JOBS, content=chunks())
    assert streamed.status_code == 413
    assert store.list_jobs()[0] == []
