"""What every job store backend promises: one suite, run on every entry of STORES.

Jobs (create, get by ID prefix, list with pages, orderings and label selectors), the
transition table and compare-and-set updates, executions, history, the scheduler's
bookkeeping columns (protocol/bookkeeping.py), node reputations, threads, and that a store
opened again finds all of it.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from bacalhau_apiclient.models.event import Event as ApiEvent
from bacalhau_apiclient.models.job_history import JobHistory as ApiJobHistory

from protocol.bookkeeping import NOT_QUEUED, Queueing, Verdict
from protocol.errors import NotFoundError, StateTransitionError, ValidationError
from protocol.execution import DesiredState, RunCommandResult
from protocol.history import JobHistoryType
from protocol.job import Job, JobStateType, SpecConfig
from protocol.selectors import parse_selector
from protocol.states import ExecutionDesiredStateType, ExecutionStateType
from requester.reputation import Outcome, Reputation
from requester.store import JobStore, Store
from tests.contract.stores import StoreBackend
from tests.support.stored import make_execution, make_job
from tests.support.threads import run_together

pytestmark = pytest.mark.timeout(60)

E = ExecutionStateType
J = JobStateType


@pytest.fixture
def store(store_backend: StoreBackend) -> JobStore:
    return store_backend.open()


def test_a_job_store_is_a_store(store: JobStore) -> None:
    typed: Store = store  # the Protocol the rest of bacalao types against
    assert typed.list_jobs() == ([], "")


# -- jobs ---------------------------------------------------------------------------------------


def test_create_job_sets_state_revision_and_times(store: JobStore) -> None:
    job = make_job(name="hello")
    stored = store.create_job(job, "v-1")
    assert stored.state.state_type is J.PENDING
    assert (stored.revision, stored.version) == (1, 1)
    assert stored.create_time == stored.modify_time > 0
    assert job.revision == 0, "the caller's job is not modified"
    assert store.get_job(job.id).to_wire() == stored.to_wire()


def test_create_job_needs_an_id_and_refuses_duplicates(store: JobStore) -> None:
    with pytest.raises(ValueError, match=r"job\.id"):
        store.create_job(make_job().model_copy(update={"id": ""}), "v-1")
    job = store.create_job(make_job(), "v-1")
    with pytest.raises(ValidationError) as raised:
        store.create_job(make_job(job.id), "v-2")
    assert raised.value.field == "ID"
    assert len(store.history(job.id)) == 1


def test_get_job_by_unique_prefix(store: JobStore) -> None:
    first = store.create_job(make_job("j-aaaa1111-0000"), "v-1")
    store.create_job(make_job("j-aaaa2222-0000"), "v-2")
    assert store.get_job("j-aaaa1").id == first.id
    with pytest.raises(ValidationError, match="several jobs") as raised:
        store.get_job("j-aaaa")
    assert raised.value.field == "ID"
    with pytest.raises(NotFoundError, match="job j-a not found"):
        store.get_job("j-a")  # shorter than 4 characters: exact IDs only
    with pytest.raises(NotFoundError, match="job j-bbbb not found"):
        store.get_job("j-bbbb")


def test_a_job_id_prefix_may_leave_the_j_out(store: JobStore) -> None:
    first = store.create_job(make_job("j-cf111fa4-0000"), "v-1")
    store.create_job(make_job("j-cf11beef-0000"), "v-2")
    assert store.get_job("cf111").id == first.id
    assert store.get_job("cf111fa4-0000").id == first.id
    with pytest.raises(ValidationError, match="several jobs"):
        store.get_job("cf11")
    with pytest.raises(NotFoundError, match="job dd00 not found"):
        store.get_job("dd00")  # the message names what was asked, not j-dd00


def test_list_jobs_filters_by_namespace_and_all_labels(store: JobStore) -> None:
    a = store.create_job(make_job(namespace="team-a", env="prod", tier="gpu"), "v")
    b = store.create_job(make_job(namespace="team-a", env="prod"), "v")
    c = store.create_job(make_job(namespace="team-b", env="prod", tier="gpu"), "v")
    store.create_job(make_job(namespace="team-b", env="dev"), "v")

    def ids(namespace: str | None = None, labels: dict[str, str] | None = None) -> list[str]:
        jobs, token = store.list_jobs(namespace=namespace, labels=labels)
        assert token == ""
        return [job.id for job in jobs]

    assert ids(namespace="team-a") == [a.id, b.id]
    assert ids(labels={"env": "prod"}) == [a.id, b.id, c.id]
    assert ids(labels={"env": "prod", "tier": "gpu"}) == [a.id, c.id]
    assert ids(namespace="team-a", labels={"tier": "gpu"}) == [a.id]
    assert ids(labels={"tier": "cpu"}) == []
    assert len(ids()) == 4


def test_list_jobs_orders_ascending_unless_reversed(store: JobStore) -> None:
    created = [store.create_job(make_job(name=name), "v") for name in ("b", "c", "a")]
    store.update_job_state(created[0].id, J.RUNNING)
    by_creation = [job.id for job in created]

    def names(order_by: str, reverse: bool = False) -> list[str]:
        return [job.name for job in store.list_jobs(order_by=order_by, reverse=reverse)[0]]

    assert [job.id for job in store.list_jobs()[0]] == by_creation
    assert [job.id for job in store.list_jobs(reverse=True)[0]] == by_creation[::-1]
    assert names("name") == ["a", "b", "c"]
    assert names("name", reverse=True) == ["c", "b", "a"]
    assert names("modified_at") == ["c", "a", "b"]
    pending = sorted(job.id for job in created[1:])
    assert [job.id for job in store.list_jobs(order_by="state")[0]] == [*pending, created[0].id]
    assert [job.id for job in store.list_jobs(order_by="id")[0]] == sorted(by_creation)
    with pytest.raises(ValidationError) as raised:
        store.list_jobs(order_by="size")
    assert raised.value.field == "order_by"


@pytest.mark.parametrize(
    ("order_by", "reverse"), [("created_at", False), ("created_at", True), ("name", True)]
)
def test_list_jobs_pages_cover_everything_once(
    store: JobStore, order_by: str, reverse: bool
) -> None:
    for index in range(23):
        store.create_job(make_job(name=f"job-{index % 3}"), "v")  # names tie: ID breaks them
    everything, token = store.list_jobs(order_by=order_by, reverse=reverse, limit=100)
    assert token == ""
    pages: list[list[str]] = []
    token = ""
    while True:
        jobs, token = store.list_jobs(order_by=order_by, reverse=reverse, limit=5, next_token=token)
        pages.append([job.id for job in jobs])
        if not token:
            break
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [job_id for page in pages for job_id in page] == [job.id for job in everything]


def test_list_jobs_exact_last_page_has_no_token(store: JobStore) -> None:
    for _ in range(10):
        store.create_job(make_job(), "v")
    first, token = store.list_jobs(limit=5)
    second, last = store.list_jobs(limit=5, next_token=token)
    assert (len(first), len(second), last) == (5, 5, "")


def test_list_jobs_rejects_foreign_tokens(store: JobStore) -> None:
    for _ in range(3):
        store.create_job(make_job(), "v")
    _, token = store.list_jobs(limit=1)
    with pytest.raises(ValidationError, match="another ordering"):
        store.list_jobs(limit=1, next_token=token, reverse=True)
    with pytest.raises(ValidationError) as raised:
        store.list_jobs(next_token="not-a-token")
    assert raised.value.field == "next_token"
    with pytest.raises(ValidationError):
        store.list_jobs(limit=-1)


def test_invalid_job_transition_raises_and_writes_nothing(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    done = store.update_job_state(job.id, J.COMPLETED, "all good")
    with pytest.raises(StateTransitionError, match="Completed to Running"):
        store.update_job_state(job.id, J.RUNNING)
    assert store.get_job(job.id).to_wire() == done.to_wire()
    assert len(store.history(job.id)) == 2


def test_update_job_state_bumps_revision_and_keeps_the_queue_bookkeeping(
    store: JobStore,
) -> None:
    job = store.create_job(make_job(), "v")
    queueing = Queueing(since_ns=5, round_ns=7, prev_round_ns=6, retries=2)
    queued = store.update_job_state(job.id, J.QUEUED, "waiting", queueing)
    assert queued.revision == 2
    assert queued.modify_time > job.modify_time
    assert queued.queueing == queueing
    assert queued.state.details == {}  # the scheduler's, not the public state's
    assert store.get_job(job.id).to_wire() == queued.to_wire()
    assert store.update_job_state(job.id, J.QUEUED, "waiting", queueing).revision == 2
    assert store.update_job_state(job.id, J.QUEUED, "waiting").queueing == NOT_QUEUED
    running = store.update_job_state(job.id, J.RUNNING, "placed")
    assert running.queueing == NOT_QUEUED


def test_bookkeeping_lives_in_columns_and_survives_a_reopen(store_backend: StoreBackend) -> None:
    queueing = Queueing(since_ns=11, round_ns=13, prev_round_ns=12, retries=3)
    verdict = Verdict(retryable=True, never_ran=True)
    with store_backend.open() as first:
        job = first.create_job(make_job(), "v")
        first.update_job_state(job.id, J.QUEUED, "waiting", queueing)
        execution = first.create_execution(make_execution(job.id))
        first.update_execution(execution.id, state=E.ASK_FOR_BID)
        failed = first.update_execution(execution.id, state=E.FAILED, verdict=verdict)
        assert failed.verdict == verdict
        noted = first.update_execution(execution.id, message="noted")  # same state: kept
        assert noted.verdict == verdict
    columns = "queued_since_ns, round_ns, prev_round_ns, retries"
    assert store_backend.sql(f"SELECT {columns} FROM jobs") == [(11, 13, 12, 3)]
    assert store_backend.sql("SELECT retryable, never_ran, busy FROM executions") == [(1, 1, 0)]
    [(stored_json,)] = store_backend.sql("SELECT json FROM executions")
    assert "Retryable" not in stored_json
    assert "NeverRan" not in stored_json
    with store_backend.open() as second:
        assert second.get_job(job.id).queueing == queueing
        assert second.active_jobs()[0].queueing == queueing
        assert second.executions(job.id)[0].verdict == verdict
        assert second.get_execution(execution.id).verdict == verdict


def test_requeue_with_same_message_adds_no_history(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    queued = store.update_job_state(job.id, J.QUEUED, "no node has capacity")
    again = store.update_job_state(job.id, J.QUEUED, "no node has capacity")
    assert again.revision == queued.revision == 2
    changed = store.update_job_state(job.id, J.QUEUED, "3 nodes refused")
    assert changed.revision == 3
    assert changed.state.message == "3 nodes refused"
    comments = [entry.comment for entry in store.history(job.id)]
    assert comments == ["Job submitted", "no node has capacity", "3 nodes refused"]


def test_active_jobs_are_the_unfinished_ones_oldest_first(store: JobStore) -> None:
    jobs = [store.create_job(make_job(), "v") for _ in range(5)]
    store.update_job_state(jobs[0].id, J.FAILED, "boom")
    store.update_job_state(jobs[1].id, J.QUEUED)
    store.update_job_state(jobs[2].id, J.RUNNING)
    store.update_job_state(jobs[3].id, J.STOPPED)
    assert [job.id for job in store.active_jobs()] == [jobs[1].id, jobs[2].id, jobs[4].id]
    assert store.job_ids() == [jobs[1].id, jobs[2].id, jobs[4].id]
    assert store.job_ids((J.QUEUED, J.FAILED)) == [jobs[0].id, jobs[1].id]


# -- executions ---------------------------------------------------------------------------------


def test_execution_is_stored_without_its_job(store: JobStore, store_backend: StoreBackend) -> None:
    job = store.create_job(make_job(), "v")
    execution = make_execution(job.id).model_copy(update={"job": job})
    created = store.create_execution(execution)
    assert (created.revision, created.create_time > 0) == (1, True)
    assert store.get_execution(created.id).job is None
    with_job = store.get_execution(created.id, include_job=True)
    assert with_job.job is not None
    assert with_job.job.id == job.id
    listed = store.executions(job.id, include_job=True)
    assert [e.job.id if e.job else "" for e in listed] == [job.id]
    [(text,)] = store_backend.sql("SELECT json FROM executions")
    assert "Job" not in json.loads(text)
    assert json.loads(text)["JobID"] == job.id


def test_create_execution_checks_job_state_and_id(store: JobStore) -> None:
    with pytest.raises(NotFoundError, match="job j-missing not found"):
        store.create_execution(make_execution("j-missing"))
    job = store.create_job(make_job(), "v")
    with pytest.raises(StateTransitionError, match="not Running"):
        store.create_execution(make_execution(job.id, state=E.RUNNING))
    created = store.create_execution(make_execution(job.id))
    with pytest.raises(ValidationError) as raised:
        store.create_execution(created)
    assert raised.value.field == "ID"
    asking = store.create_execution(make_execution(job.id, state=E.ASK_FOR_BID))
    assert [e.state for e in store.executions(job.id)] == [E.NEW, E.ASK_FOR_BID]
    (entry,) = store.history(job.id, execution_id=asking.id)
    assert entry.to_wire()["ExecutionState"] == {"Previous": 0, "New": 2}
    with pytest.raises(NotFoundError, match="execution e-nope not found"):
        store.get_execution("e-nope")


def test_executions_in_creation_order_and_counted_by_node(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    nodes = ["n-1", "n-2", "n-1", "n-3", "n-1"]
    created = [store.create_execution(make_execution(job.id, node)) for node in nodes]
    assert [e.id for e in store.executions(job.id)] == [e.id for e in created]
    assert store.count_executions_by_node(job.id) == {"n-1": 3, "n-2": 1, "n-3": 1}
    assert store.count_executions_by_node("j-other") == {}


def test_update_execution_is_compare_and_set(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    execution = store.create_execution(make_execution(job.id))
    asked = store.update_execution(execution.id, state=E.ASK_FOR_BID, expect={E.NEW})
    with pytest.raises(StateTransitionError, match="is AskForBid, expected New"):
        store.update_execution(execution.id, state=E.ASK_FOR_BID_ACCEPTED, expect={E.NEW})
    with pytest.raises(StateTransitionError, match="AskForBid to Completed"):
        store.update_execution(execution.id, state=E.COMPLETED)
    assert store.get_execution(execution.id).to_wire() == asked.to_wire()
    assert len(store.history(job.id, event_type="executions")) == 2


def test_update_execution_records_results_and_messages(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    execution = store.create_execution(make_execution(job.id, state=E.NEW))
    for state in (E.ASK_FOR_BID, E.ASK_FOR_BID_ACCEPTED):
        store.update_execution(execution.id, state=state)
    accepted = store.update_execution(
        execution.id,
        state=E.BID_ACCEPTED,
        desired=ExecutionDesiredStateType.RUNNING,
        message="bid accepted",
    )
    assert accepted.desired_state == DesiredState(
        state_type=ExecutionDesiredStateType.RUNNING, message="bid accepted"
    )
    noted = store.update_execution(execution.id, message="pulling image", details={"Busy": "no"})
    assert (noted.state, noted.compute_state.message) == (E.BID_ACCEPTED, "pulling image")
    assert noted.compute_state.details == {"Busy": "no"}
    kept = store.update_execution(execution.id, desired=ExecutionDesiredStateType.RUNNING)
    assert kept.compute_state == noted.compute_state
    assert kept.desired_state == accepted.desired_state
    assert store.history(job.id)[-1].event.details == {"Busy": "no", "DesiredState": "Running"}
    output = RunCommandResult(stdout="hi\n", exit_code=0)
    result = SpecConfig(type="local", params={"URL": "file:///tmp/r"})
    done = store.update_execution(
        execution.id, state=E.COMPLETED, run_output=output, published_result=result
    )
    assert (done.revision, done.compute_state.message) == (7, "")
    assert done.compute_state.details == {}
    stored = store.get_execution(execution.id)
    assert stored.to_wire() == done.to_wire()
    assert stored.run_output == output
    assert stored.published_result == result


# -- history ------------------------------------------------------------------------------------


def test_history_records_every_change_in_bacalhau_shape(store: JobStore) -> None:
    job = store.create_job(make_job(), "v-42")
    one = store.create_execution(make_execution(job.id, "n-1"))
    two = store.create_execution(make_execution(job.id, "n-2"))
    store.update_execution(one.id, state=E.ASK_FOR_BID, message="asking")
    store.update_job_state(job.id, J.RUNNING, "one node bid")

    everything = store.history(job.id)
    assert [entry.type for entry in everything] == [
        JobHistoryType.JOB_LEVEL,
        JobHistoryType.EXECUTION_LEVEL,
        JobHistoryType.EXECUTION_LEVEL,
        JobHistoryType.EXECUTION_LEVEL,
        JobHistoryType.JOB_LEVEL,
    ]
    submitted, _, _, asked, running = everything
    assert submitted.event.details == {"EvaluationID": "v-42"}
    assert submitted.to_wire()["JobState"] == {"Previous": "Undefined", "New": "Pending"}
    assert asked.to_wire()["ExecutionState"] == {"Previous": 1, "New": 2}
    assert (asked.execution_id, asked.node_id, asked.comment) == (one.id, "n-1", "asking")
    assert (running.new_revision, running.event.message) == (2, "one node bid")
    assert set(running.to_wire()) == set(ApiJobHistory.attribute_map.values())
    assert set(running.to_wire()["Event"]) == set(ApiEvent.attribute_map.values())
    assert [entry.time_ns for entry in everything] == sorted(e.time_ns for e in everything)

    assert len(store.history(job.id, event_type="jobs")) == 2
    assert len(store.history(job.id, event_type="executions")) == 3
    assert [e.execution_id for e in store.history(job.id, execution_id=one.id)] == [one.id] * 2
    assert [e.execution_id for e in store.history(job.id, node_id="n-2")] == [two.id]
    assert store.history(job.id, since_ns=running.time_ns) == [running]
    with pytest.raises(ValidationError) as raised:
        store.history(job.id, event_type="nodes")
    assert raised.value.field == "event_type"
    with pytest.raises(NotFoundError):
        store.history("j-unknown")


# -- durability and concurrency -----------------------------------------------------------------


def test_everything_survives_close_and_reopen(store_backend: StoreBackend) -> None:
    with store_backend.open() as first:
        job = first.create_job(make_job(env="prod"), "v")
        execution = first.create_execution(make_execution(job.id))
        first.update_execution(execution.id, state=E.ASK_FOR_BID)
        job = first.update_job_state(job.id, J.RUNNING, "running")
        executions = first.executions(job.id)
        history = first.history(job.id)
    with store_backend.open() as second:
        assert second.get_job(job.id).to_wire() == job.to_wire()
        assert [e.to_wire() for e in second.executions(job.id)] == [e.to_wire() for e in executions]
        assert second.history(job.id) == history
        assert [j.id for j in second.active_jobs()] == [job.id]
        assert second.list_jobs(labels={"env": "prod"})[0][0].id == job.id
        second.update_job_state(job.id, J.COMPLETED)
    with store_backend.open() as third:
        assert third.get_job(job.id).state.state_type is J.COMPLETED
        assert third.active_jobs() == []


def test_concurrent_updates_on_different_executions_are_never_lost(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    executions = [store.create_execution(make_execution(job.id, f"n-{i}")) for i in range(8)]
    updates = 25

    def work(index: int) -> None:
        for step in range(updates):
            store.update_execution(executions[index].id, message=f"step {step}")

    assert run_together(8, work) == []
    revisions = [e.revision for e in store.executions(job.id)]
    assert sum(revisions) == 8 * (1 + updates)
    assert len(store.history(job.id, event_type="executions")) == 8 * (1 + updates)


def test_concurrent_updates_on_one_execution_all_count(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    execution = store.create_execution(make_execution(job.id))

    def work(index: int) -> None:
        for step in range(10):
            store.update_execution(execution.id, message=f"thread {index} step {step}")

    assert run_together(8, work) == []
    assert store.get_execution(execution.id).revision == 1 + 8 * 10


def test_concurrent_compare_and_set_lets_exactly_one_win(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    execution = store.create_execution(make_execution(job.id))
    store.update_execution(execution.id, state=E.ASK_FOR_BID)

    def work(index: int) -> None:
        store.update_execution(
            execution.id,
            state=E.ASK_FOR_BID_ACCEPTED,
            message=f"bid from thread {index}",
            expect={E.ASK_FOR_BID},
        )

    errors = run_together(8, work)
    assert len(errors) == 7
    assert all(isinstance(error, StateTransitionError) for error in errors)
    assert store.get_execution(execution.id).revision == 3


def test_live_executions_span_jobs_and_leave_out_terminal_ones(store: JobStore) -> None:
    jobs = [store.create_job(make_job(), "ev") for _ in range(2)]
    done = store.create_execution(make_execution(jobs[0].id, state=E.ASK_FOR_BID))
    live = store.create_execution(make_execution(jobs[1].id, state=E.ASK_FOR_BID))
    store.update_execution(done.id, state=E.FAILED)
    assert [e.id for e in store.live_executions()] == [live.id]


def test_reads_do_not_wait_for_a_write_in_progress(store: JobStore) -> None:
    job = store.create_job(make_job(), "ev")
    seen: list[str] = []
    with store._transaction():  # a writer holds the store
        reader = threading.Thread(target=lambda: seen.append(store.get_job(job.id).id))
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "the read waited for the writer"
    assert seen == [job.id]


def forged(*fields: object) -> str:
    raw = json.dumps(list(fields)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("order_by", "token"),
    [
        ("created_at", forged("created_at", False, 10**30, "j-x")),
        ("created_at", forged("created_at", False, "late", "j-x")),
        ("created_at", forged("created_at", False, True, "j-x")),
        ("id", forged("id", False, 3, "j-x")),
        ("created_at", forged("created_at", False, 1, "\ud800")),
        ("name", forged("name", False, "a\x00b", "j-x")),
    ],
    ids=["beyond-int64", "text-for-a-time", "bool", "number-for-an-id", "surrogate", "nul"],
)
def test_list_jobs_refuses_tokens_a_backend_cannot_compare(
    store: JobStore, order_by: str, token: str
) -> None:
    store.create_job(make_job(), "v")
    with pytest.raises(ValidationError) as raised:
        store.list_jobs(order_by=order_by, next_token=token)
    assert raised.value.field == "next_token"


def test_list_jobs_filters_by_label_selector(store: JobStore) -> None:
    prod = store.create_job(make_job(env="prod", gpu="yes"), "v").id
    dev = store.create_job(make_job(env="dev"), "v").id
    bare = store.create_job(make_job(), "v").id

    def ids(selector: str) -> list[str]:
        return [job.id for job in store.list_jobs(labels=parse_selector(selector))[0]]

    assert ids("env in (prod,dev)") == [prod, dev]
    assert ids("env!=prod") == [dev, bare]
    assert ids("env notin (dev)") == [prod, bare]
    assert ids("env,!gpu") == [dev]
    assert ids("!env") == [bare]
    assert ids("") == [prod, dev, bare]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("selector", "every"), [("env!=dev", 2), ("env=rare", 9)])
def test_list_jobs_selector_pages_cover_every_match_once(
    store: JobStore, monkeypatch: pytest.MonkeyPatch, reverse: bool, selector: str, every: int
) -> None:
    monkeypatch.setattr("requester.store.jobstore.SCAN_BATCH", 4)  # several reads per page
    jobs = [
        store.create_job(make_job(env="rare" if index % every == 0 else "dev"), "v")
        for index in range(40)
    ]
    expected = [job.id for job in jobs if job.labels["env"] != "dev"]
    expected = expected[::-1] if reverse else expected
    for limit in (1, 3, 7):
        seen: list[str] = []
        token = ""
        for _ in range(len(jobs) + 1):
            found, token = store.list_jobs(
                labels=parse_selector(selector), limit=limit, reverse=reverse, next_token=token
            )
            assert len(found) == limit or not token  # a token follows only a full page
            seen += [job.id for job in found]
            if not token:
                break
        assert seen == expected


def test_a_job_stored_before_a_rule_was_added_stays_readable(store_backend: StoreBackend) -> None:
    """Submission rules tighten over releases; what the store already holds must still load
    (these values were accepted by earlier versions)."""
    with store_backend.open() as first:
        job = first.create_job(make_job(), "v")
        execution = first.create_execution(make_execution(job.id))
    old = job.to_wire()
    old["Constraints"] = [{"Key": "load avg", "Operator": "gt", "Values": ["7.5"]}]
    old["Tasks"][0]["ResultPaths"] = [
        {"Name": "out", "Path": "/out"},
        {"Name": "out", "Path": "/out/"},
    ]
    old["Tasks"][0]["Resources"] = {"CPU": "1" * 400}
    with pytest.raises(ValidationError):
        Job.from_wire(old)  # new input is held to today's rules
    store_backend.sql("UPDATE jobs SET json = ? WHERE id = ?", (json.dumps(old), job.id))
    with store_backend.open() as second:
        loaded = second.get_job(job.id)
        assert loaded.constraints[0].key == "load avg"
        assert [r.name for r in loaded.task.result_paths] == ["out", "out"]
        assert [j.id for j in second.active_jobs()] == [job.id]
        assert [j.id for j in second.list_jobs()[0]] == [job.id]
        assert [e.id for e in second.executions(job.id)] == [execution.id]


# -- what else the requester keeps --------------------------------------------------------------


def test_reputation_changes_apply_to_the_stored_row_and_are_kept_across_a_reopen(
    store_backend: StoreBackend,
) -> None:
    def completed(now_ns: int) -> Callable[[Reputation], Reputation]:
        return lambda before: before.recorded(Outcome.COMPLETED, now_ns)

    heard: list[tuple[str, Reputation]] = []
    with store_backend.open() as first:
        first.on_reputation(lambda node, reputation: heard.append((node, reputation)))
        assert first.reputations() == {}
        first.change_reputation("n-good", completed(10))
        assert heard == [("n-good", Reputation(completed=1.0, failed=0.0, updated_ns=10))]
        # another requester on the database records an outcome: the next change adds to it
        store_backend.sql("UPDATE reputations SET completed = completed + 2")
        with first.batch():
            first.change_reputation("n-good", completed(10))
            first.change_reputation("n-bad", lambda r: r.recorded(Outcome.FAILED, 11))
            assert len(heard) == 1  # the batch's changes are saved, and heard, as it commits
        assert heard[1:] == [
            ("n-bad", Reputation(completed=0.0, failed=1.0, updated_ns=11)),
            ("n-good", Reputation(completed=4.0, failed=0.0, updated_ns=10)),
        ]
        with first.batch():
            first.change_reputation("n-bad", completed(11))
            with pytest.raises(StateTransitionError):  # a refused change in the same batch
                first.update_job_state(first.create_job(make_job(), "v").id, JobStateType.PENDING)
        assert heard[-1] == ("n-bad", Reputation(completed=1.0, failed=1.0, updated_ns=11))
        with pytest.raises(RuntimeError), failing_batch(first):
            first.change_reputation("n-bad", completed(13))  # a pass that fails: not saved
        assert len(heard) == 4
    with store_backend.open() as second:
        assert second.reputations() == {
            "n-good": Reputation(completed=4.0, failed=0.0, updated_ns=10),
            "n-bad": Reputation(completed=1.0, failed=1.0, updated_ns=11),
        }


@contextmanager
def failing_batch(store: JobStore) -> Iterator[None]:
    """A batch whose block raises once it has run."""
    with store.batch():
        yield
        raise RuntimeError("the pass failed")


def test_count_by_state_counts_jobs_and_executions(store: JobStore) -> None:
    jobs = [store.create_job(make_job(), "v") for _ in range(3)]
    store.update_job_state(jobs[0].id, J.RUNNING)
    store.create_execution(make_execution(jobs[0].id, state=E.ASK_FOR_BID))
    store.create_execution(make_execution(jobs[0].id))
    assert store.count_by_state() == ({"Pending": 2, "Running": 1}, {int(E.NEW): 1, 2: 1})


def test_a_batch_commits_its_changes_together_and_a_refused_one_writes_nothing(
    store_backend: StoreBackend,
) -> None:
    store = store_backend.open()
    job = store.create_job(make_job(), "v")
    execution = store.create_execution(make_execution(job.id))
    with store.batch():
        store.update_job_state(job.id, J.RUNNING, "placed")
        with pytest.raises(StateTransitionError):
            store.update_execution(execution.id, state=E.COMPLETED)  # New -> Completed
        store.update_execution(execution.id, state=E.ASK_FOR_BID)
        assert store.get_job(job.id).state.state_type is J.RUNNING  # the batch's own view
    with store_backend.open() as other:
        assert other.get_job(job.id).state.state_type is J.RUNNING
        assert [e.state for e in other.executions(job.id)] == [E.ASK_FOR_BID]
        assert len(other.history(job.id)) == 4


def test_a_failed_batch_writes_nothing(store_backend: StoreBackend) -> None:
    store = store_backend.open()
    job = store.create_job(make_job(), "v")

    def failing_pass() -> None:
        with store.batch():
            store.update_job_state(job.id, J.RUNNING, "placed")
            store.create_execution(make_execution(job.id))
            raise RuntimeError("the pass failed")

    with pytest.raises(RuntimeError, match="the pass failed"):
        failing_pass()
    assert store.get_job(job.id).state.state_type is J.PENDING
    assert store.executions(job.id) == []
    with store_backend.open() as other:
        assert other.get_job(job.id).state.state_type is J.PENDING
        assert other.history(job.id)[-1].comment == "Job submitted"


def test_a_second_store_on_the_same_database_lists_what_the_first_wrote(
    store_backend: StoreBackend,
) -> None:
    first = store_backend.open()
    created = [first.create_job(make_job(env="prod"), "v") for _ in range(3)]
    second = store_backend.open()
    assert [job.id for job in second.list_jobs()[0]] == [job.id for job in created]
    assert second.job_ids() == [job.id for job in created]


@pytest.mark.parametrize("bad_id", ["j-\x00", "\x00\x00\x00\x00", "e-\x00"])
def test_an_id_no_row_can_hold_is_not_found(store: JobStore, bad_id: str) -> None:
    store.create_job(make_job(), "v")
    with pytest.raises(NotFoundError):
        store.get_job(bad_id)
    with pytest.raises(NotFoundError):
        store.get_execution(bad_id)
    with pytest.raises(NotFoundError):
        store.history(bad_id)


def test_a_duplicate_execution_id_is_refused(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    execution = store.create_execution(make_execution(job.id))
    with pytest.raises(ValidationError) as raised:
        store.create_execution(execution.model_copy(update={"revision": 0}))
    assert raised.value.field == "ID"
    assert len(store.executions(job.id)) == 1


# -- leases: which requester follows which job --------------------------------------------------

S = 1_000_000_000  # a second, in nanoseconds


def test_a_lease_is_held_until_it_expires_then_another_owner_may_claim_it(
    store: JobStore,
) -> None:
    job = store.create_job(make_job(), "v")
    assert store.leases.owner(job.id, now_ns=0) is None
    assert store.leases.claim("r-1", [job.id], ttl_s=10, now_ns=100 * S) == [job.id]
    assert store.leases.owner(job.id, now_ns=105 * S) == "r-1"
    assert store.leases.claim("r-2", [job.id], ttl_s=10, now_ns=105 * S) == []
    assert store.leases.owner(job.id, now_ns=105 * S) == "r-1"
    assert store.leases.owner(job.id, now_ns=110 * S) is None  # expired: nobody's
    assert store.leases.claim("r-2", [job.id], ttl_s=10, now_ns=110 * S) == [job.id]
    assert store.leases.owner(job.id, now_ns=111 * S) == "r-2"
    assert store.leases.held("r-1", now_ns=111 * S) == []
    assert store.leases.held("r-2", now_ns=111 * S) == [job.id]


def test_renewing_keeps_an_owners_leases_and_not_those_taken_over(store: JobStore) -> None:
    kept, lost = (store.create_job(make_job(), "v").id for _ in range(2))
    assert store.leases.claim("r-1", [kept, lost], ttl_s=5, now_ns=0) == sorted([kept, lost])
    assert store.leases.renew("r-1", ttl_s=5, now_ns=4 * S) == sorted([kept, lost])
    assert store.leases.owner(kept, now_ns=8 * S) == "r-1"  # renewed at 4 s: until 9 s
    assert store.leases.renew("r-1", ttl_s=5, now_ns=8 * S) == sorted([kept, lost])  # to 13 s
    assert store.leases.claim("r-2", [lost], ttl_s=5, now_ns=13 * S) == [lost]  # lapsed
    # a lapsed lease is not renewed but claimed again, by whoever comes first
    assert store.leases.renew("r-1", ttl_s=5, now_ns=13 * S) == []
    assert store.leases.claim("r-1", [kept, lost], ttl_s=5, now_ns=13 * S) == [kept]
    assert store.leases.renew("r-1", ttl_s=5, now_ns=17 * S) == [kept]
    assert store.leases.held("r-1", now_ns=18 * S) == [kept]
    assert store.leases.claim("r-1", [kept], ttl_s=5, now_ns=18 * S) == [kept]  # its own


def test_released_leases_may_be_claimed_at_once(store: JobStore) -> None:
    jobs = [store.create_job(make_job(), "v").id for _ in range(3)]
    store.leases.claim("r-1", jobs, ttl_s=60, now_ns=0)
    store.leases.release("r-2", jobs)  # not its leases: nothing happens
    assert store.leases.held("r-1", now_ns=1) == sorted(jobs)
    store.leases.release("r-1", jobs[:1])
    assert store.leases.claim("r-2", jobs, ttl_s=60, now_ns=1) == [jobs[0]]
    store.leases.release("r-1")
    assert store.leases.claim("r-2", jobs, ttl_s=60, now_ns=2) == sorted(jobs)


def test_unowned_lists_the_jobs_under_way_nobody_holds_oldest_first(store: JobStore) -> None:
    free, held, expired, done = (store.create_job(make_job(), "v").id for _ in range(4))
    store.update_job_state(done, J.COMPLETED)
    store.leases.claim("r-1", [held], ttl_s=60, now_ns=0)
    store.leases.claim("r-1", [expired], ttl_s=1, now_ns=0)
    assert store.leases.unowned(now_ns=2 * S) == [free, expired]


def test_a_lease_needs_a_stored_job_an_owner_and_a_ttl(store: JobStore) -> None:
    job = store.create_job(make_job(), "v")
    with pytest.raises(NotFoundError, match="job j-missing not found"):
        store.leases.claim("r-1", [job.id, "j-missing"], ttl_s=10)
    assert store.leases.owner(job.id) is None  # nothing claimed
    with pytest.raises(ValidationError):
        store.leases.claim("", [job.id], ttl_s=10)
    with pytest.raises(ValidationError):
        store.leases.claim("r-1", [job.id], ttl_s=0)
    assert store.leases.claim("r-1", [], ttl_s=10) == []


def test_of_owners_claiming_one_job_at_once_exactly_one_holds_it(
    store_backend: StoreBackend,
) -> None:
    stores = [store_backend.open(), store_backend.open()]
    jobs = [stores[0].create_job(make_job(), "v").id for _ in range(5)]

    def work(index: int) -> None:
        stores[index % 2].leases.claim(f"r-{index}", jobs, ttl_s=60)

    assert run_together(6, work) == []
    owners = {stores[1].leases.owner(job_id) for job_id in jobs}
    assert len(owners) == 1  # the first claim took all five; the others found them held
    (owner,) = owners
    assert owner is not None
    assert stores[0].leases.held(owner) == sorted(jobs)


def test_leases_survive_a_reopen(store_backend: StoreBackend) -> None:
    with store_backend.open() as first:
        job = first.create_job(make_job(), "v")
        first.leases.claim("r-1", [job.id], ttl_s=3600)
    with store_backend.open() as second:
        assert second.leases.owner(job.id) == "r-1"
        assert second.leases.claim("r-2", [job.id], ttl_s=60) == []


def test_a_store_with_a_lease_owner_leases_it_each_job_until_the_job_ends(
    store_backend: StoreBackend,
) -> None:
    store = store_backend.open(lease_owner="r-1", lease_ttl_s=30)
    job = store.create_job(make_job(), "v")
    assert store.leases.owner(job.id, now_ns=job.create_time + 29 * S) == "r-1"
    assert store.leases.owner(job.id, now_ns=job.create_time + 30 * S) is None
    store.update_job_state(job.id, J.RUNNING)
    assert store.leases.held("r-1", now_ns=job.create_time) == [job.id]
    store.update_job_state(job.id, J.COMPLETED)
    assert store_backend.sql("SELECT job_id FROM leases") == []
    plain = store_backend.open()  # no owner: no lease
    assert plain.leases.owner(plain.create_job(make_job(), "v").id) is None


def test_a_job_another_owner_ended_keeps_its_lease_until_that_owner_lets_it_go(
    store_backend: StoreBackend,
) -> None:
    """A stop through another requester leaves the lease to the one that follows the job,
    which finds the job among its ended ones, cancels, and releases it; a lapsed lease of
    an ended job is swept, as nobody will claim it."""
    owner = store_backend.open(lease_owner="r-1", lease_ttl_s=30)
    stopper = store_backend.open(lease_owner="r-2", lease_ttl_s=30)
    running, lapsing = (owner.create_job(make_job(), "v") for _ in range(2))
    now = running.create_time
    stopper.update_job_state(running.id, J.STOPPED, "stopped by user")
    assert stopper.leases.owner(running.id, now_ns=now) == "r-1"
    assert owner.leases.ended("r-1", now_ns=now) == [running.id]
    assert stopper.leases.ended("r-2", now_ns=now) == []
    owner.leases.release("r-1", [running.id])
    assert owner.leases.ended("r-1", now_ns=now) == []
    stopper.update_job_state(lapsing.id, J.STOPPED, "stopped by user")
    owner.leases.sweep(now_ns=now)  # still live: its owner may yet cancel
    assert owner.leases.ended("r-1", now_ns=now) == [lapsing.id]
    owner.leases.sweep(now_ns=now + 31 * S)
    assert store_backend.sql("SELECT job_id FROM leases") == []


def test_an_ended_job_whose_owner_died_before_cancelling_its_runs_is_claimed(
    store_backend: StoreBackend,
) -> None:
    """Stopped through another requester while its owner still held the lease, then the
    owner died: the job's execution still runs, so its lapsed lease is listed for a taker
    (who adopts and cancels the run) and not swept."""
    owner = store_backend.open(lease_owner="r-1", lease_ttl_s=30)
    stopper = store_backend.open(lease_owner="r-2", lease_ttl_s=30)
    job = owner.create_job(make_job(), "v")
    execution = owner.create_execution(make_execution(job.id))
    owner.update_execution(execution.id, state=E.ASK_FOR_BID)
    stopper.update_job_state(job.id, J.STOPPED, "stopped by user")
    later = job.create_time + 31 * S
    stopper.leases.sweep(now_ns=later)
    assert stopper.leases.lapsed(now_ns=later) == {job.id: "r-1"}
    assert stopper.leases.unowned(now_ns=later) == [job.id]
    assert stopper.leases.claim("r-2", [job.id], ttl_s=30, now_ns=later) == [job.id]
    stopper.update_execution(
        execution.id, state=E.CANCELLED, desired=ExecutionDesiredStateType.STOPPED
    )
    assert stopper.leases.ended("r-2", now_ns=later) == [job.id]
    stopper.leases.release("r-2", [job.id])
    assert stopper.leases.lapsed(now_ns=later) == {}


def test_lapsed_leases_name_the_owner_that_let_them_lapse(store: JobStore) -> None:
    held, lapsed, never = (store.create_job(make_job(), "v").id for _ in range(3))
    store.leases.claim("r-1", [held], ttl_s=60, now_ns=0)
    store.leases.claim("r-2", [lapsed], ttl_s=5, now_ns=0)
    store.leases.release("r-1", [never])  # nobody held it: it stays without a lease
    store.leases.claim("r-3", [never], ttl_s=5, now_ns=0)
    store.leases.release("r-3", [never])
    assert store.leases.lapsed(now_ns=10 * S) == {lapsed: "r-2", never: ""}
    assert store.leases.unowned(now_ns=10 * S) == list(store.leases.lapsed(now_ns=10 * S))
