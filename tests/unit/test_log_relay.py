"""The requester's log relay: a session asks the execution's node for what it has not seen,
one ask at a time, never for more than its buffer has room for, and hears only that node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.execution import ComputeState, Execution, RunCommandResult
from protocol.ids import new_evaluation_id, new_execution_id, new_job_id
from protocol.job import Job, JobStateType
from protocol.logs import MAX_CHUNK_BYTES, LogChunk
from protocol.messages import ExecutionLogs, ExecutionLogsRequest
from protocol.states import ExecutionStateType as S
from requester.log_buffer import DATA, END, ERROR, EXECUTION, LogEvent
from requester.log_session import FULL, LogSession
from requester.logs import FollowRefusedError, LogRelay, LogRelayConfig
from requester.store import JobStore
from tests.support.recorders import FakeClock, Recorder

NODE = "n-compute"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.db") as opened:
        yield opened


def submitted(store: JobStore) -> Job:
    job = Job.from_wire({"ID": new_job_id(), "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]})
    return store.create_job(job, new_evaluation_id())


def placed(store: JobStore, job: Job, *states: S, stdout: str = "") -> Execution:
    execution = store.create_execution(
        Execution(
            id=new_execution_id(),
            job_id=job.id,
            node_id=NODE,
            compute_state=ComputeState(state_type=S.ASK_FOR_BID),
        )
    )
    for state in states:
        output = RunCommandResult(stdout=stdout) if state.terminal else None
        execution = store.update_execution(execution.id, state=state, run_output=output)
    return execution


def relay_of(store: JobStore, **config: float) -> tuple[LogRelay, Recorder, FakeClock]:
    outbox, clock = Recorder(), FakeClock()
    return LogRelay(store, outbox, LogRelayConfig(**config), clock=clock), outbox, clock  # type: ignore[arg-type]


def asks(outbox: Recorder) -> list[ExecutionLogsRequest]:
    return [m for m in outbox.sent if isinstance(m, ExecutionLogsRequest)]


def answer(session: LogSession, *chunks: tuple[str, int, bytes], **fields: object) -> ExecutionLogs:
    return ExecutionLogs.model_validate(
        {
            "ExecutionID": session.execution_id,
            "JobID": session.job_id,
            "StreamID": session.id,
            "Seq": session.seq,
            "Chunks": [
                LogChunk(stream=stream, offset=offset, data=data).to_wire()
                for stream, offset, data in chunks
            ],
            **fields,
        }
    )


def texts(events: list[LogEvent]) -> list[tuple[str, str]]:
    return [(event.stream, event.text) for event in events if event.kind == DATA]


def test_a_session_waits_for_a_run_then_asks_its_node_from_the_start(store: JobStore) -> None:
    job = submitted(store)
    relay, outbox, clock = relay_of(store)
    session = relay.open(job.id)
    assert not asks(outbox)  # nothing runs yet
    execution = placed(store, job, S.ASK_FOR_BID_ACCEPTED, S.BID_ACCEPTED)
    session.tick(store, clock())
    assert not asks(outbox)  # accepted, not started: the node may not hold it yet
    store.update_execution(execution.id, state=S.RUNNING)
    session.tick(store, clock())
    (first,) = outbox.to_whom(ExecutionLogsRequest)
    assert first[0] == NODE
    request = first[1]
    assert isinstance(request, ExecutionLogsRequest)
    assert (request.execution_id, request.stdout_offset, request.stderr_offset) == (
        execution.id,
        0,
        0,
    )
    assert request.follow
    events, over = session.take()
    assert [(e.kind, e.execution_id, e.node_id) for e in events] == [
        (EXECUTION, execution.id, NODE)
    ]
    assert not over


def test_answers_become_events_and_the_next_ask_starts_where_they_ended(
    store: JobStore,
) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, outbox, _ = relay_of(store)
    session = relay.open(job.id)
    relay.handle(NODE, answer(session, ("stdout", 0, b"hello\n"), ("stderr", 0, b"oops\n")))
    second = asks(outbox)[-1]
    assert (second.seq, second.stdout_offset, second.stderr_offset) == (2, 6, 5)
    relay.handle(NODE, answer(session, ("stdout", 6, b"bye\n"), End=True))
    events, over = session.take()
    assert texts(events) == [("stdout", "hello\n"), ("stderr", "oops\n"), ("stdout", "bye\n")]
    assert events[-1].kind == END
    assert over
    assert len(asks(outbox)) == 2  # nothing asked after the end


def test_only_the_node_of_the_execution_and_the_current_ask_are_heard(store: JobStore) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, outbox, _ = relay_of(store)
    session = relay.open(job.id)
    relay.handle("n-other", answer(session, ("stdout", 0, b"forged")))
    stale = answer(session, ("stdout", 0, b"late"))
    relay.handle(NODE, answer(session, ("stdout", 0, b"real")))
    relay.handle(NODE, stale)  # the answer to an ask made before: dropped
    assert texts(session.take()[0]) == [("stdout", "real")]
    assert len(asks(outbox)) == 2


def test_the_buffer_bounds_what_is_asked_and_a_full_buffer_stops_asking(
    store: JobStore,
) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, outbox, _ = relay_of(store, buffer_bytes=1000)
    session = relay.open(job.id)
    assert asks(outbox)[-1].max_bytes == 1000
    relay.handle(NODE, answer(session, ("stdout", 0, b"x" * 700)))
    assert asks(outbox)[-1].max_bytes == 300  # what room is left, no more
    relay.handle(NODE, answer(session, ("stdout", 700, b"y" * 200)))
    assert session.state == FULL  # 100 bytes of room: not worth an ask
    assert len(asks(outbox)) == 2  # full: no ask until the follower takes
    assert session.buffer.peak_bytes <= 1000
    events, _ = session.take()
    assert "".join(text for _, text in texts(events)) == "x" * 700 + "y" * 200
    again = asks(outbox)[-1]
    assert (again.stdout_offset, again.max_bytes) == (900, 1000)


def test_an_answer_larger_than_asked_or_with_a_gap_is_dropped_and_asked_again(
    store: JobStore,
) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, outbox, _ = relay_of(store, buffer_bytes=100)
    session = relay.open(job.id)
    relay.handle(NODE, answer(session, ("stdout", 0, b"z" * 101)))
    relay.handle(NODE, answer(session, ("stdout", 5, b"after a gap")))
    assert texts(session.take()[0]) == []
    assert [(a.seq, a.stdout_offset) for a in asks(outbox)] == [(1, 0), (2, 0), (3, 0)]
    assert session.buffer.peak_bytes == 0


def test_a_character_cut_between_answers_arrives_whole(store: JobStore) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, _, _ = relay_of(store)
    session = relay.open(job.id)
    encoded = "né\n".encode()
    relay.handle(NODE, answer(session, ("stdout", 0, encoded[:2])))
    relay.handle(NODE, answer(session, ("stdout", 2, encoded[2:]), End=True))
    assert "".join(text for _, text in texts(session.take()[0])) == "né\n"


def test_a_late_answer_is_asked_for_again(store: JobStore) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, outbox, clock = relay_of(store, answer_timeout_s=15)
    session = relay.open(job.id)
    clock.advance(10)
    session.tick(store, clock())
    assert len(asks(outbox)) == 1
    clock.advance(6)
    session.tick(store, clock())
    assert [a.seq for a in asks(outbox)] == [1, 2]


def test_when_the_node_cannot_serve_the_stored_output_finishes_the_follow(
    store: JobStore,
) -> None:
    job = submitted(store)
    execution = placed(store, job, S.RUNNING)
    relay, outbox, clock = relay_of(store)
    session = relay.open(job.id)
    relay.handle(NODE, answer(session, ("stdout", 0, b"one\n")))
    relay.handle(NODE, answer(session, End=True, Error="its output is gone"))
    session.tick(store, clock())  # not ended in the store yet: wait for its RunOutput
    assert not session.take()[1]
    store.update_execution(
        execution.id, state=S.COMPLETED, run_output=RunCommandResult(stdout="one\ntwo\n")
    )
    session.tick(store, clock())
    events, over = session.take()
    assert texts(events) == [("stdout", "two\n")]  # what the follow had not sent yet
    assert events[-1].kind == END
    assert over
    assert len(asks(outbox)) == 2


def test_an_ended_execution_is_answered_from_the_store_without_asking(store: JobStore) -> None:
    job = submitted(store)
    placed(store, job, S.BID_ACCEPTED, S.RUNNING, S.COMPLETED, stdout="a\nb\nc\n")
    store.update_job_state(job.id, JobStateType.COMPLETED, "done")
    relay, outbox, _ = relay_of(store)
    events, over = relay.open(job.id, follow=False).take()
    assert texts(events) == [("stdout", "a\nb\nc\n")]
    assert over
    tailed, _ = relay.open(job.id, tail_lines=1).take()
    assert texts(tailed) == [("stdout", "c\n")]
    assert not asks(outbox)


def test_a_job_that_ended_without_output_is_an_error(store: JobStore) -> None:
    job = submitted(store)
    store.update_job_state(job.id, JobStateType.FAILED, "nobody bid")
    relay, _, _ = relay_of(store)
    events, over = relay.open(job.id).take()
    assert [e.kind for e in events] == [ERROR]
    assert "no execution with output" in events[0].message
    assert over


def test_sessions_are_bounded_and_one_nobody_reads_is_closed(store: JobStore) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, _, clock = relay_of(store, max_sessions=2, abandon_s=60)
    first = relay.open(job.id)
    relay.open(job.id)
    with pytest.raises(FollowRefusedError, match="try again later"):
        relay.open(job.id)
    clock.advance(30)
    first.take()
    clock.advance(40)
    relay.sweep()  # the second was not read for 70 s: closed
    assert relay.sessions() == [first]
    relay.open(job.id)  # room for another


def test_the_ask_never_exceeds_a_chunk(store: JobStore) -> None:
    job = submitted(store)
    placed(store, job, S.RUNNING)
    relay, outbox, _ = relay_of(store, buffer_bytes=10 * MAX_CHUNK_BYTES)
    relay.open(job.id)
    assert asks(outbox)[0].max_bytes == MAX_CHUNK_BYTES
