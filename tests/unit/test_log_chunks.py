"""The pure rules of following an execution's output: what one answer reads, where a tail
starts, which part of an answer is new, the bounded buffer, the messages' own bounds."""

from __future__ import annotations

import base64
import json

import pytest

from compute.log_reads import Read, advanced, caught_up, plan_reads
from protocol.dispatch import TO_COMPUTE, TO_REQUESTER
from protocol.envelope import Codec
from protocol.errors import MessageError
from protocol.execution import ComputeState, Execution, RunCommandResult
from protocol.logs import MAX_CHUNK_BYTES, STDERR, STDOUT, LogChunk, tail_of, tail_start
from protocol.messages import MESSAGE_TYPES, ExecutionLogs, ExecutionLogsRequest
from protocol.states import ExecutionStateType as S
from requester.log_buffer import (
    DATA,
    END,
    LogBuffer,
    LogEvent,
    fresh_part,
    pick_execution,
    stored_output,
)

OUT, ERR = STDOUT, STDERR
FULL_CHUNK = base64.b64encode(b"x" * MAX_CHUNK_BYTES).decode()


def test_one_answer_reads_everything_new_when_it_fits() -> None:
    reads = plan_reads({OUT: 10, ERR: 0}, {OUT: 30, ERR: 5}, 100)
    assert reads == [Read(OUT, 10, 20), Read(ERR, 0, 5)]


def test_nothing_new_is_no_read_and_an_offset_past_the_end_reads_nothing() -> None:
    assert plan_reads({OUT: 30, ERR: 5}, {OUT: 30, ERR: 5}, 100) == []
    assert plan_reads({OUT: 99, ERR: 0}, {OUT: 30, ERR: 0}, 100) == []


def test_a_flooding_stream_gets_half_and_cannot_starve_the_other() -> None:
    reads = plan_reads({OUT: 0, ERR: 0}, {OUT: 10**9, ERR: 10**9}, MAX_CHUNK_BYTES)
    assert reads == [Read(OUT, 0, MAX_CHUNK_BYTES // 2), Read(ERR, 0, MAX_CHUNK_BYTES // 2)]


def test_what_one_stream_does_not_need_goes_to_the_other() -> None:
    reads = plan_reads({OUT: 0, ERR: 0}, {OUT: 10**9, ERR: 100}, 1000)
    assert reads == [Read(OUT, 0, 900), Read(ERR, 0, 100)]
    assert sum(read.length for read in reads) == 1000


@pytest.mark.parametrize("max_bytes", [1, 2, 3, 999, MAX_CHUNK_BYTES])
def test_an_answer_never_reads_more_than_asked(max_bytes: int) -> None:
    for sizes in ({OUT: 10**9, ERR: 0}, {OUT: 0, ERR: 10**9}, {OUT: 10**9, ERR: 10**9}):
        reads = plan_reads({OUT: 0, ERR: 0}, sizes, max_bytes)
        assert 0 < sum(read.length for read in reads) <= max_bytes


def test_offsets_advance_past_the_chunks_and_catch_up() -> None:
    chunks = [LogChunk(stream=OUT, offset=10, data=b"abc")]
    after = advanced({OUT: 10, ERR: 4}, chunks)
    assert after == {OUT: 13, ERR: 4}
    assert caught_up(after, {OUT: 13, ERR: 4})
    assert not caught_up(after, {OUT: 13, ERR: 5})


@pytest.mark.parametrize(
    ("data", "lines", "tail"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),
        (b"a\nb\n", 5, b"a\nb\n"),
        (b"a\nb\n", 0, b"a\nb\n"),
        (b"", 3, b""),
        (b"no newline", 1, b"no newline"),
        (b"\n\n\n", 2, b"\n\n"),
        (b"x\n" * 10_000, 3, b"x\n" * 3),
    ],
)
def test_the_last_lines(data: bytes, lines: int, tail: bytes) -> None:
    assert tail_of(data, lines) == tail


def test_a_tail_is_found_block_by_block_and_never_further_back_than_the_scan_limit() -> None:
    data = b"line\n" * 1000 + b"y" * 5000  # the last "line" has no newline for 5000 bytes
    asked: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        asked.append((offset, length))
        return data[offset : offset + length]

    start = tail_start(len(data), read_at, 2, block_bytes=512, max_scan_bytes=1 << 20)
    assert data[start:] == b"line\n" + b"y" * 5000
    assert max(length for _, length in asked) <= 512
    start = tail_start(len(data), read_at, 2, block_bytes=512, max_scan_bytes=1000)
    assert start == len(data) - 1000  # not found within the limit: cut there


def test_the_new_part_of_an_answer() -> None:
    assert fresh_part(10, 10, b"abc") == b"abc"
    assert fresh_part(12, 10, b"abc") == b"c"  # partly seen already
    assert fresh_part(20, 10, b"abc") == b""  # all seen
    assert fresh_part(10, 11, b"abc") is None  # a gap: byte 10 was lost


def test_the_buffer_refuses_what_does_not_fit_and_take_empties_it() -> None:
    buffer = LogBuffer(10)
    assert buffer.push(LogEvent(DATA, text="x" * 8), 8)
    assert not buffer.push(LogEvent(DATA, text="yyy"), 3)
    assert buffer.push(LogEvent(END))  # no output: no room needed
    assert buffer.room == 2
    assert buffer.peak_bytes == 8
    assert [event.kind for event in buffer.take()] == [DATA, END]
    assert buffer.room == 10
    assert len(buffer) == 0
    assert buffer.push(LogEvent(DATA, text="z" * 50), 50, force=True)  # bounded elsewhere


def _execution(number: int, state: S, stdout: str = "") -> Execution:
    return Execution(
        id=f"e-{number}",
        job_id="j-1",
        node_id=f"n-{number}",
        compute_state=ComputeState(state_type=state),
        run_output=RunCommandResult(stdout=stdout) if state.terminal else None,
        create_time=number,
        modify_time=number,
    )


def test_which_execution_is_followed() -> None:
    running = [_execution(1, S.FAILED), _execution(2, S.RUNNING), _execution(3, S.RUNNING)]
    assert pick_execution(running, job_ended=False) == running[1]  # the first to run
    waiting = [_execution(1, S.FAILED), _execution(2, S.BID_ACCEPTED)]
    assert pick_execution(waiting, job_ended=False) is None  # a retry is coming: wait
    ended = [_execution(1, S.FAILED), _execution(2, S.COMPLETED), _execution(3, S.FAILED)]
    assert pick_execution(ended, job_ended=True) == ended[1]
    failed = [_execution(1, S.FAILED), _execution(2, S.FAILED)]
    assert pick_execution(failed, job_ended=True) == failed[1]  # the latest ended
    assert pick_execution([], job_ended=True) is None


def test_the_stored_output_continues_at_byte_offsets() -> None:
    execution = _execution(1, S.COMPLETED, stdout="héllo\n")
    assert stored_output(execution, OUT) == "héllo\n".encode()
    assert stored_output(execution, ERR) == b""


def test_the_messages_are_registered_and_routed() -> None:
    assert MESSAGE_TYPES["ExecutionLogsRequest"] is ExecutionLogsRequest
    assert MESSAGE_TYPES["ExecutionLogs"] is ExecutionLogs
    assert "ExecutionLogsRequest" in TO_COMPUTE
    assert "ExecutionLogs" in TO_REQUESTER


def test_chunks_travel_as_base64_and_come_back_as_the_same_bytes() -> None:
    data = bytes(range(256))
    message = ExecutionLogs(
        execution_id="e-1",
        job_id="j-1",
        stream_id="s-1",
        chunks=[LogChunk(stream=ERR, offset=7, data=data)],
    )
    decoded = Codec("n-b").decode(Codec("n-a").encode(message, "n-b")).payload
    assert isinstance(decoded, ExecutionLogs)
    assert decoded.chunks[0].data == data
    assert decoded.chunks[0].offset == 7


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"Chunks": [{"Stream": "stdout", "Offset": 0, "Data": "not base64!"}]}, "base64"),
        ({"Chunks": [{"Stream": "stdin", "Offset": 0, "Data": ""}]}, "Stream"),
        ({"Chunks": [{"Stream": "stdout", "Offset": -1, "Data": ""}]}, "Offset"),
        (
            {"Chunks": [{"Stream": "stdout", "Offset": 0}, {"Stream": "stdout", "Offset": 5}]},
            "one chunk per stream",
        ),
        (
            {
                "Chunks": [
                    {"Stream": "stdout", "Offset": 0, "Data": FULL_CHUNK},
                    {"Stream": "stderr", "Offset": 0, "Data": "eA=="},
                ]
            },
            "over the",
        ),
    ],
)
def test_a_malformed_answer_is_a_message_error(payload: dict[str, object], problem: str) -> None:
    body = {"ExecutionID": "e-1", "JobID": "j-1", "StreamID": "s-1", **payload}
    envelope = {"Version": 1, "Type": "ExecutionLogs", "ID": "m-1", "Sender": "n-a", "SentAt": 1}
    with pytest.raises(MessageError, match=problem):
        Codec("n-b").decode(json.dumps({**envelope, "Payload": body}).encode())


@pytest.mark.parametrize(
    "payload",
    [
        {"MaxBytes": 0},
        {"MaxBytes": MAX_CHUNK_BYTES + 1},
        {"StdoutOffset": -5},
        {"TailLines": -1},
        {"StreamID": ""},
    ],
)
def test_a_malformed_ask_does_not_validate(payload: dict[str, object]) -> None:
    body = {"ExecutionID": "e-1", "JobID": "j-1", "StreamID": "s-1", **payload}
    with pytest.raises(Exception, match="validation error"):
        ExecutionLogsRequest.model_validate(body)
