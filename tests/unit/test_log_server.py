"""A compute node's log server: one answer per ask, read from the run's files at the asked
offsets, bounded, and only for the requester the execution belongs to."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from compute.config import ComputeConfig
from compute.executors.noop import NoopExecutor
from compute.logs import LogServer, LogServerConfig, LogSource
from compute.node import ComputeNode
from compute.publishers.noop import NoopPublisher
from compute.registry import Registry
from compute.runner import Plugins
from compute.storage.inline import InlineStorage
from protocol.envelope import Envelope
from protocol.execution import ComputeState, Execution
from protocol.job import Job
from protocol.logs import MAX_CHUNK_BYTES
from protocol.messages import AskForBid, ExecutionLogs, ExecutionLogsRequest, ExecutionStarted
from protocol.resources import Resources
from protocol.states import ExecutionStateType as S
from tests.support.recorders import Recorder
from tests.support.wait import wait_until

REQUESTER = "n-requester"
CONFIG = LogServerConfig(wait_s=0.3, poll_s=0.02, idle_s=60, max_pending=4, max_open=4)


@dataclass
class Sources:
    """Executions this fake node holds: execution ID -> (requester, folder, ended)."""

    held: dict[str, LogSource] = field(default_factory=dict)

    def log_source(self, execution_id: str) -> LogSource | None:
        return self.held.get(execution_id)

    def run(self, root: Path, execution_id: str, requester: str = REQUESTER) -> Path:
        folder = root / execution_id
        folder.mkdir()
        self.held[execution_id] = LogSource(requester, folder, ended=False)
        return folder

    def end(self, execution_id: str) -> None:
        source = self.held[execution_id]
        self.held[execution_id] = LogSource(source.requester, source.folder, ended=True)


@pytest.fixture
def served() -> Iterator[tuple[LogServer, Sources, Recorder]]:
    sources, outbox = Sources(), Recorder()
    server = LogServer(sources, outbox, CONFIG)
    server.start()
    yield server, sources, outbox
    server.close()


def ask(
    execution_id: str = "e-1", seq: int = 1, stream_id: str = "s-1", **fields: object
) -> ExecutionLogsRequest:
    return ExecutionLogsRequest.model_validate(
        {"ExecutionID": execution_id, "JobID": "j-1", "StreamID": stream_id, "Seq": seq, **fields}
    )


def answers(outbox: Recorder, count: int = 1) -> list[ExecutionLogs]:
    def sent() -> list[ExecutionLogs]:
        found = [answer for answer in outbox.sent if isinstance(answer, ExecutionLogs)]
        return found if len(found) >= count else []

    return wait_until(sent, 10, message=f"{count} answers")


def data(answer: ExecutionLogs) -> dict[str, tuple[int, bytes]]:
    return {chunk.stream: (chunk.offset, chunk.data) for chunk in answer.chunks}


def test_output_is_sent_as_soon_as_it_is_written(
    served: tuple[LogServer, Sources, Recorder], tmp_path: Path
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    server.handle(REQUESTER, ask())
    wait_until(lambda: server.pending() == 1, 5, message="the ask to wait")
    assert not outbox.sent  # nothing written yet (the inputs are staging): it waits
    (folder / "stdout").write_bytes(b"hello\n")
    (first,) = answers(outbox)
    assert data(first) == {"stdout": (0, b"hello\n")}
    assert (first.seq, first.stream_id, first.end, first.error) == (1, "s-1", False, "")
    assert outbox.to_whom(ExecutionLogs)[0][0] == REQUESTER
    assert server.pending() == 0  # one answer per ask


def test_an_ask_with_nothing_new_is_answered_empty_after_the_wait(
    served: tuple[LogServer, Sources, Recorder], tmp_path: Path
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    (folder / "stdout").write_bytes(b"seen")
    server.handle(REQUESTER, ask(StdoutOffset=4))
    (empty,) = answers(outbox)
    assert empty.chunks == []
    assert not empty.end


def test_the_end_comes_once_the_run_ended_and_everything_was_sent(
    served: tuple[LogServer, Sources, Recorder], tmp_path: Path
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    (folder / "stdout").write_bytes(b"out")
    (folder / "stderr").write_bytes(b"err")
    server.handle(REQUESTER, ask())
    (first,) = answers(outbox)
    assert data(first) == {"stdout": (0, b"out"), "stderr": (0, b"err")}
    assert not first.end  # still running: more may come
    sources.end("e-1")
    server.handle(REQUESTER, ask(seq=2, StdoutOffset=3, StderrOffset=3))
    last = answers(outbox, 2)[1]
    assert last.chunks == []
    assert last.end


def test_a_run_cleaned_away_is_still_read_to_its_end_from_the_open_files(
    served: tuple[LogServer, Sources, Recorder], tmp_path: Path
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    (folder / "stdout").write_bytes(b"a" * 1000)
    server.handle(REQUESTER, ask(MaxBytes=100))
    assert data(answers(outbox)[0]) == {"stdout": (0, b"a" * 100)}
    with (folder / "stdout").open("ab") as more:
        more.write(b"b" * 10)
    sources.end("e-1")
    shutil.rmtree(folder)  # the node sent the result and removed the run's folder
    del sources.held["e-1"]  # ... and forgot the execution
    server.handle(REQUESTER, ask(seq=2, StdoutOffset=100, MaxBytes=MAX_CHUNK_BYTES))
    last = answers(outbox, 2)[1]
    assert data(last) == {"stdout": (100, b"a" * 900 + b"b" * 10)}
    assert last.end


def test_each_answer_reads_at_most_what_was_asked(
    served: tuple[LogServer, Sources, Recorder], tmp_path: Path
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    (folder / "stdout").write_bytes(b"x" * (3 * MAX_CHUNK_BYTES))
    sources.end("e-1")
    offset = 0
    for seq in range(1, 5):
        server.handle(REQUESTER, ask(seq=seq, StdoutOffset=offset))
        answer = answers(outbox, seq)[-1]
        size = sum(len(chunk.data) for chunk in answer.chunks)
        assert size <= MAX_CHUNK_BYTES
        offset += size
        if answer.end:
            break
    assert offset == 3 * MAX_CHUNK_BYTES
    assert answer.end


def test_a_tail_starts_each_stream_at_its_last_lines(
    served: tuple[LogServer, Sources, Recorder], tmp_path: Path
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    (folder / "stdout").write_bytes(b"1\n2\n3\n4\n")
    server.handle(REQUESTER, ask(TailLines=2))
    (first,) = answers(outbox)
    assert data(first) == {"stdout": (4, b"3\n4\n"), "stderr": (0, b"")}  # where each starts


def test_without_follow_the_end_is_what_there_is_now(
    served: tuple[LogServer, Sources, Recorder], tmp_path: Path
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    (folder / "stdout").write_bytes(b"so far")
    server.handle(REQUESTER, ask(Follow=False))
    (first,) = answers(outbox)
    assert data(first) == {"stdout": (0, b"so far")}
    assert first.end  # all it has now, although it still runs


def test_another_nodes_ask_is_ignored(
    served: tuple[LogServer, Sources, Recorder],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, sources, outbox = served
    folder = sources.run(tmp_path, "e-1")
    (folder / "stdout").write_bytes(b"secret")
    with caplog.at_level(logging.WARNING, logger="bacalao.compute"):
        server.handle("n-stranger", ask(Follow=False))
    assert "message_from_wrong_node" in caplog.text
    assert server.pending() == 0
    server.handle(REQUESTER, ask(seq=2, Follow=False))  # the owner's ask is answered
    (only,) = answers(outbox)
    assert only.seq == 2
    assert [node for node, _ in outbox.to_whom(ExecutionLogs)] == [REQUESTER]


def test_an_execution_the_node_does_not_hold_is_refused_with_the_reason(
    served: tuple[LogServer, Sources, Recorder],
) -> None:
    server, _, outbox = served
    server.handle(REQUESTER, ask("e-unknown"))
    (refusal,) = answers(outbox)
    assert refusal.end
    assert "does not hold" in refusal.error


def test_asks_waiting_at_once_are_bounded_and_a_follow_asks_once(tmp_path: Path) -> None:
    sources, outbox = Sources(), Recorder()
    patient = LogServerConfig(wait_s=60, poll_s=0.02, max_pending=4)  # nobody is answered
    server = LogServer(sources, outbox, patient)
    server.start()
    try:
        _fill_up(server, sources, outbox, tmp_path)
    finally:
        server.close()


def _fill_up(server: LogServer, sources: Sources, outbox: Recorder, tmp_path: Path) -> None:
    for number in range(4):
        sources.run(tmp_path, f"e-{number}")
        server.handle(REQUESTER, ask(f"e-{number}", stream_id=f"s-{number}"))
    server.handle(REQUESTER, ask("e-0", seq=2, stream_id="s-0"))  # replaces its first ask
    assert server.pending() == 4
    sources.run(tmp_path, "e-9")
    server.handle(REQUESTER, ask("e-9", stream_id="s-9"))
    refusal = answers(outbox)[0]
    assert (refusal.execution_id, refusal.end) == ("e-9", True)
    assert "too many" in refusal.error
    assert server.pending() == 4


def test_a_compute_node_serves_only_the_requester_that_placed_the_execution(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Recorder()
    plugins = Plugins(
        executors=Registry("executor", [NoopExecutor()]),
        storage=Registry("storage source", [InlineStorage()]),
        publishers=Registry("publisher", [NoopPublisher()]),
    )
    config = ComputeConfig(max_capacity=Resources(cpu=4, memory=8 * 1024**3), logs=CONFIG)
    node = ComputeNode("n-compute", config, plugins, outbox, tmp_path)
    node.start()
    try:
        job = Job.model_validate(
            {"ID": "j-1", "Tasks": [{"Engine": {"Type": "noop", "Params": {"SleepSeconds": 30}}}]}
        )
        execution = Execution(
            id="e-1",
            job_id=job.id,
            node_id="n-compute",
            compute_state=ComputeState(state_type=S.ASK_FOR_BID),
            job=job,
        )
        placed = AskForBid(execution=execution, wait_for_approval=False)
        node.handle(Envelope("AskForBid", "m-1", REQUESTER, 0, placed))
        wait_until(lambda: outbox.of(ExecutionStarted), 10, message="the run to start")
        with caplog.at_level(logging.WARNING, logger="bacalao.compute"):
            node.handle(Envelope("ExecutionLogsRequest", "m-2", "n-other", 0, ask(Follow=False)))
        assert "message_from_wrong_node" in caplog.text
        node.handle(Envelope("ExecutionLogsRequest", "m-3", REQUESTER, 0, ask(seq=2, Follow=False)))
        (answer,) = answers(outbox)
        assert (answer.seq, answer.end, answer.error, answer.chunks) == (2, True, "", [])
        assert [to for to, _ in outbox.to_whom(ExecutionLogs)] == [REQUESTER]
    finally:
        node.close()
