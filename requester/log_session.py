"""One follower's session: the state machine behind ``job logs --follow`` (see
:mod:`requester.logs` for how sessions are driven, bounded and fed)."""

from __future__ import annotations

import codecs
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Protocol

from protocol.errors import NotFoundError
from protocol.execution import Execution
from protocol.job import Job
from protocol.logs import MAX_CHUNK_BYTES, STDERR, STDOUT, STREAMS, Stream, tail_of
from protocol.messages import ExecutionLogs, ExecutionLogsRequest, Message
from requester.log_buffer import (
    DATA,
    END,
    ERROR,
    EXECUTION,
    FOLLOWED_STATES,
    LogBuffer,
    LogEvent,
    fresh_part,
    pick_execution,
    stored_output,
)

log = logging.getLogger("bacalao.requester")


class Jobs(Protocol):
    def get_job(self, job_id: str) -> Job: ...

    def executions(self, job_id: str, include_job: bool = False) -> list[Execution]: ...


class Sender(Protocol):
    def send(self, node_id: str, message: Message) -> None: ...


class Host(Protocol):
    """What a session needs of its relay."""

    @property
    def answer_timeout_s(self) -> float: ...

    def now(self) -> float: ...

    def send(self, node_id: str, message: ExecutionLogsRequest) -> None: ...

    def discard(self, session: LogSession) -> None: ...


WAITING = "waiting"  # for an execution to run (or for the stored output)
ASKING = "asking"  # an ask is out
FULL = "full"  # the buffer has no room: ask once the follower took some
DONE = "done"


class LogSession:
    """One follower's view of one execution's output. Thread-safe: the bus thread, the
    relay's ticker and the follower all call it."""

    def __init__(
        self,
        relay: Host,
        job_id: str,
        execution_id: str | None,
        *,
        follow: bool,
        tail_lines: int,
        buffer_bytes: int,
        now_s: float,
    ) -> None:
        self.id = secrets.token_hex(12)
        self.job_id = job_id
        self.execution_id = execution_id
        self.node_id = ""
        self.follow = follow
        self.tail_lines = tail_lines
        self.buffer = LogBuffer(buffer_bytes)
        self.state = WAITING
        self.seq = 0
        self.asked_s = now_s
        self.taken_s = now_s
        self.from_store = False  # the node cannot serve: the stored output will
        self.offsets: dict[Stream, int] = {STDOUT: 0, STDERR: 0}
        self._tail_pending = tail_lines > 0
        self._relay = relay
        self._lock = threading.RLock()
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in STREAMS}
        self._on_news: Callable[[], None] | None = None

    # -- the follower ----------------------------------------------------------------------

    def on_news(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (from any thread) whenever there is something to take."""
        self._on_news = callback

    def take(self) -> tuple[list[LogEvent], bool]:
        """The events so far, and whether the session is over (nothing will follow them)."""
        with self._lock:
            self.taken_s = self._relay.now()
            events = self.buffer.take()
            if self.state == FULL:
                self._ask()
            return events, self.state == DONE and not len(self.buffer)

    def close(self) -> None:
        """The follower is gone."""
        self._relay.discard(self)
        with self._lock:
            self.state = DONE
            self._on_news = None

    def abort(self, message: str) -> None:
        """End the session with ``message`` as its last event."""
        with self._lock:
            if self.state != DONE:
                self._fail(message)
        self._relay.discard(self)

    # -- the relay ---------------------------------------------------------------------------

    def tick(self, jobs: Jobs, now_s: float) -> None:
        """Look at the store when waiting, ask again when an answer is late (ticker). The
        store is read outside the session's lock: the follower's take never waits on it."""
        with self._lock:
            late = self.state == ASKING and now_s - self.asked_s >= self._relay.answer_timeout_s
            if self.state != WAITING and not late:
                return
            seq = self.seq
        try:
            job = jobs.get_job(self.job_id)
            executions = jobs.executions(job.id)
        except NotFoundError:
            self.abort(f"job {self.job_id} is gone")
            return
        with self._lock:
            if self.seq != seq or self.state not in (WAITING, ASKING):
                return  # an answer came meanwhile
            if late:
                log.info("event=logs_ask_again execution=%s seq=%d", self.execution_id, seq)
            self._decide(job, executions)

    def answer(self, sender: str, message: ExecutionLogs) -> None:
        """An answer of the node (bus thread)."""
        with self._lock:
            if self.state != ASKING or message.seq != self.seq:
                return  # late: an older ask's, or the session is over
            if sender != self.node_id:
                log.warning(
                    "event=message_from_wrong_node type=ExecutionLogs execution=%s sender=%s "
                    "owner=%s",
                    self.execution_id,
                    sender,
                    self.node_id,
                )
                return
            if message.error:
                log.info(
                    "event=logs_from_store execution=%s reason=%r",
                    self.execution_id,
                    message.error,
                )
                self.from_store = True  # the ticker sends the stored output once it is there
                self.state = WAITING
                return
            if not self._accept(message):
                self._ask()  # a gap, or more than asked for: ask from where it stands
                return
            if message.end:
                self._finish()
            elif self.buffer.room >= self._ask_min_bytes():
                self._ask()
            else:
                self.state = FULL
        self._news()

    def _accept(self, message: ExecutionLogs) -> bool:
        data_bytes = sum(len(chunk.data) for chunk in message.chunks)
        if data_bytes > self.buffer.room:
            return False
        fresh: list[tuple[Stream, int, bytes]] = []
        for chunk in message.chunks:
            expected = self.offsets[chunk.stream]
            if self._tail_pending and chunk.offset >= expected:
                expected = chunk.offset  # a tail starts where the node found its lines
            part = fresh_part(expected, chunk.offset, chunk.data)
            if part is None:
                return False
            fresh.append((chunk.stream, expected, part))
        self._tail_pending = False
        for stream, offset, part in fresh:
            self.offsets[stream] = offset + len(part)
            self._push(stream, offset, part)
        return True

    def _push(self, stream: Stream, offset: int, data: bytes, final: bool = False) -> None:
        """Output as text (a character cut between two chunks waits for its end); the
        caller made room for it, but for the stored output, which the store holds anyway."""
        text = self._decoders[stream].decode(data, final)
        if text:
            event = LogEvent(DATA, stream=stream, offset=offset, text=text)
            self.buffer.push(event, len(data), force=self.from_store or final)

    def _ask_min_bytes(self) -> int:
        return min(MAX_CHUNK_BYTES, self.buffer.limit_bytes) // 4 or 1

    def _ask(self) -> None:
        self.seq += 1
        self.state = ASKING
        self.asked_s = self._relay.now()
        request = ExecutionLogsRequest(
            execution_id=self.execution_id or "",
            job_id=self.job_id,
            stream_id=self.id,
            seq=self.seq,
            stdout_offset=self.offsets[STDOUT],
            stderr_offset=self.offsets[STDERR],
            max_bytes=max(1, min(MAX_CHUNK_BYTES, self.buffer.room)),
            follow=self.follow,
            tail_lines=self.tail_lines if self._tail_pending else 0,
        )
        self._relay.send(self.node_id, request)

    def _decide(self, job: Job, executions: list[Execution]) -> None:
        """From the store: follow the execution, send its stored output, or wait."""
        if self.execution_id is None:
            chosen = pick_execution(executions, job.terminal)
        else:
            chosen = next((e for e in executions if e.id == self.execution_id), None)
            if chosen is None:
                self._fail(f"execution {self.execution_id} is gone")
                return
        if chosen is None:
            if job.terminal or not self.follow:
                self._fail(f"job {job.id} has no execution with output to show")
            return  # nothing runs yet: wait
        if self.execution_id is None or not self.node_id:
            self.execution_id, self.node_id = chosen.id, chosen.node_id
            self.buffer.push(LogEvent(EXECUTION, execution_id=chosen.id, node_id=chosen.node_id))
            self._news()
        if chosen.state.terminal:
            self._from_store(chosen)
        elif chosen.state in FOLLOWED_STATES and not self.from_store:
            self._ask()
        elif not self.follow and not self.from_store:
            self._fail(f"execution {chosen.id} is not running yet")
        # else: not running yet, or ended on its node and not yet in the store: wait

    def _from_store(self, execution: Execution) -> None:
        for stream in STREAMS:
            stored = stored_output(execution, stream)
            offset = self.offsets[stream]
            if self._tail_pending:
                offset = len(stored) - len(tail_of(stored, self.tail_lines))
            if offset < len(stored):
                self.from_store = True
                self._push(stream, offset, stored[offset:])
                self.offsets[stream] = len(stored)
        self._tail_pending = False
        self._finish()

    def _finish(self) -> None:
        for stream in STREAMS:
            self._push(stream, self.offsets[stream], b"", final=True)
        self.buffer.push(LogEvent(END, execution_id=self.execution_id or ""))
        self.state = DONE
        self._news()

    def _fail(self, message: str) -> None:
        self.buffer.push(LogEvent(ERROR, message=message))
        self.state = DONE
        self._news()

    def _news(self) -> None:
        callback = self._on_news
        if callback is not None:
            callback()
