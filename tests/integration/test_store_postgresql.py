"""What is PostgreSQL's own in the job store: several stores (requesters) on one database,
migrations run once however many start together, and a URL or server that does not work is
one line naming --store. What every backend does is in tests/contract/test_store_contract.py."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from cli.main import create_app
from protocol.errors import StateTransitionError
from protocol.execution import ComputeState, DesiredState, Execution
from protocol.job import Job, JobStateType
from protocol.messages import CancelExecution, NodeInfoMessage
from protocol.node import NodeInfo, NodeType
from protocol.states import ExecutionDesiredStateType as D
from protocol.states import ExecutionStateType as E
from requester import orchestrator as orchestrator_module
from requester.orchestrator import Orchestrator, RequesterConfig
from requester.reputation import Outcome, Reputation
from requester.store import SCHEMA_VERSION, JobStore, StoreError
from tests.support.jobs import noop_job
from tests.support.postgres import PostgresServer
from tests.support.recorders import Recorder
from tests.support.services import free_port
from tests.support.stored import make_execution, make_job
from tests.support.threads import run_together
from tests.support.wait import wait_until
from tests.unit.test_orchestrator import compute_info, envelope

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_compare_and_set_lets_exactly_one_of_several_stores_win(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with JobStore(url) as first, JobStore(url) as second:
        job = first.create_job(make_job(), "v")
        execution = first.create_execution(make_execution(job.id))
        first.update_execution(execution.id, state=E.ASK_FOR_BID)
        stores = (first, second)

        def work(index: int) -> None:
            stores[index % 2].update_execution(
                execution.id,
                state=E.ASK_FOR_BID_ACCEPTED,
                message=f"bid seen by requester {index % 2}",
                expect={E.ASK_FOR_BID},
            )

        errors = run_together(8, work)
        assert len(errors) == 7
        assert all(isinstance(error, StateTransitionError) for error in errors)
        assert second.get_execution(execution.id).revision == first.get_execution(
            execution.id
        ).revision == 3  # fmt: skip
        assert len(second.history(job.id, event_type="executions")) == 3


def test_updates_from_several_stores_are_never_lost(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with JobStore(url) as first, JobStore(url) as second:
        job = first.create_job(make_job(), "v")
        execution = first.create_execution(make_execution(job.id))
        stores = (first, second)

        def work(index: int) -> None:
            for step in range(10):
                stores[index % 2].update_execution(execution.id, message=f"{index}: {step}")

        assert run_together(6, work) == []
        assert first.get_execution(execution.id).revision == 1 + 6 * 10
        assert len(second.history(job.id, event_type="executions")) == 1 + 6 * 10


def test_batches_of_several_stores_changing_the_same_reputations_neither_deadlock_nor_lose_one(
    postgres: PostgresServer,
) -> None:
    """Two requesters' passes end executions of the same nodes in opposite orders, at once
    (each waits for the other inside its batch): both commit, and both outcomes count."""
    url = postgres.create_database()
    both_in_batch = threading.Barrier(2, timeout=20)
    with JobStore(url) as first, JobStore(url) as second:
        orders = ((first, ["n-a", "n-b", "n-c"]), (second, ["n-c", "n-b", "n-a"]))

        def work(index: int) -> None:
            store, nodes = orders[index]
            with store.batch():
                for node in nodes:
                    store.change_reputation(node, completed)
                both_in_batch.wait()

        assert run_together(2, work) == []
        saved = first.reputations()
    assert {node: reputation.completed for node, reputation in saved.items()} == {
        "n-a": 2.0,
        "n-b": 2.0,
        "n-c": 2.0,
    }


def completed(before: Reputation) -> Reputation:
    return before.recorded(Outcome.COMPLETED, 10)


def test_stores_opening_a_new_database_together_migrate_it_once(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database()
    with ThreadPoolExecutor(max_workers=4) as pool:
        stores = list(pool.map(lambda _: JobStore(url), range(4)))
    for store in stores:
        store.close()
    with psycopg.connect(url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == list(range(1, SCHEMA_VERSION + 1))


def test_a_database_of_a_newer_bacalao_is_refused(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    JobStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this bacalao"):
        JobStore(url)


def test_a_url_that_does_not_work_says_why(postgres: PostgresServer) -> None:
    with pytest.raises(StoreError, match="not a PostgreSQL URL: invalid URI query parameter"):
        JobStore("postgresql://bacalao@127.0.0.1/db?bogus=1")
    with pytest.raises(StoreError, match="port 'notaport' is not a number"):
        JobStore("postgresql://bacalao@127.0.0.1:notaport/db")
    with pytest.raises(StoreError, match=r"cannot reach PostgreSQL: .*Connection refused"):
        JobStore(f"postgresql://bacalao:x@127.0.0.1:{free_port()}/db")
    wrong = postgres.url("postgres").replace(postgres.password, "wrong")
    with pytest.raises(StoreError, match="password authentication failed"):
        JobStore(wrong)
    with pytest.raises(StoreError, match='database "nowhere" does not exist'):
        JobStore(postgres.url("nowhere"))


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("postgresql://bacalao:secret@127.0.0.1:{port}/db", "cannot reach PostgreSQL: "),
        ("postgresql://bacalao:secret@127.0.0.1:x/db", "not a PostgreSQL URL: "),
        ("mysql://bacalao:secret@127.0.0.1/db", "unknown store scheme 'mysql'"),
    ],
    ids=["unreachable", "bad-port", "unknown-scheme"],
)
def test_serve_with_a_store_that_does_not_work_is_one_line_naming_store(
    tmp_path: Path, target: str, problem: str
) -> None:
    url = target.format(port=free_port())
    args = ["serve", "--node-type", "requester", "--api-port", "0", "--store", url]
    result = CliRunner().invoke(create_app(), [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit)  # not a traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    shown = url.replace(":secret@", ":***@")
    assert lines[0].startswith(f"Error: --store: {shown}: {problem}")
    assert "secret" not in result.stderr


def test_stops_to_carry_out_go_first_and_survive_a_pass_that_has_no_budget_left(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs this requester follows are stopped through another requester; a pass with
    room for one evaluation takes a stop first, and the other stop, carried, is carried out
    by the next pass (its lease kept until then): both runs are cancelled, both leases go."""
    monkeypatch.setattr(orchestrator_module, "PASS_BUDGET", 1)
    path = postgres.create_database()
    with (
        JobStore(path, lease_owner="n-requester") as store,
        JobStore(path, lease_owner="n-other") as other,
    ):
        stopped = []
        for index in range(2):
            job = Job.model_validate(noop_job())
            job.id = f"j-stopped-{index}"
            stopped.append(store.create_job(job, "ev").id)
            store.create_execution(
                Execution(
                    id=f"e-{index}",
                    job_id=job.id,
                    node_id="n-a",
                    compute_state=ComputeState(state_type=E.ASK_FOR_BID),
                    desired_state=DesiredState(state_type=D.RUNNING),
                )
            )
            store.update_execution(f"e-{index}", state=E.RUNNING, expect=(E.ASK_FOR_BID,))
        busy = Job.model_validate(noop_job())
        busy.id = "j-busy"
        store.create_job(busy, "ev")
        sent = Recorder()
        info = NodeInfo(node_id="n-requester", node_type=NodeType.REQUESTER)
        service = Orchestrator(info, store, sent, RequesterConfig(settle_s=0))
        service.handle(envelope("n-a", NodeInfoMessage(info=compute_info("n-a"))))
        service.start()
        try:
            wait_until(  # the jobs it resumed at its start, one per pass
                lambda: service.debug()["Orchestrator"]["Evaluations"] >= 3,
                10,
                message="the start's evaluations",
            )
            for job_id in stopped:
                other.update_job_state(job_id, JobStateType.STOPPED, "stopped by user")
            assert store.leases.ended("n-requester") == stopped
            service.ended_elsewhere(stopped)  # as the lease keeper's next beat does
            wait_until(
                lambda: all(
                    store.get_execution(f"e-{index}").state == E.CANCELLED for index in (0, 1)
                ),
                10,
                message="both runs cancelled",
            )
            wait_until(
                lambda: store.leases.held("n-requester") == ["j-busy"],
                10,
                message="both stopped jobs' leases let go",
            )
        finally:
            service.close()
        cancels = [getattr(m, "execution_id", "") for _, m in sent.to_whom(CancelExecution)]
        assert sorted(cancels) == ["e-0", "e-1"]
