"""A compute node's side of following a run's output: each ExecutionLogsRequest gets one
ExecutionLogs answer, read from the run's ``stdout`` and ``stderr`` files.

Pull, one answer per ask. The requester asks for what was written past its offsets, at most
``MaxBytes``; the node answers once: as soon as there is something new (it looks every
``poll_s``), empty after ``wait_s`` (the requester then knows the node still follows), or
with ``End`` once the run is over and all of it was sent. Nothing is sent unasked, so a
requester that stops asking (its client went away) costs the node nothing after ``wait_s``,
and one that asks slowly (its buffer is full) gets output only as fast as it drains it.

Memory is bounded by the asks: at most ``max_pending`` wait at a time, and each answer is
read from the files at its offsets (``os.pread``), at most ``MAX_CHUNK_BYTES``: a program
that writes gigabytes is read a chunk at a time, never held.

Files are opened at an execution's first ask and held open while it is followed: a run's
folder is removed once its result is sent, and an open file still reads to its end, so the
last lines of a run that just ended still reach the requester. They are closed once ``End``
was sent, after ``idle_s`` without an ask, or to make room when more than ``max_open``
executions are followed (the least recently asked first).

Only the requester the execution belongs to may ask, as for every other message about it;
an ask from another node is logged and ignored.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from compute.log_reads import advanced, caught_up, plan_reads
from protocol.errors import TransportError
from protocol.logs import STDERR, STDOUT, STREAMS, LogChunk, ReadAt, Stream, tail_start
from protocol.messages import ExecutionLogs, ExecutionLogsRequest, Message

log = logging.getLogger("bacalao.compute")


@dataclass(frozen=True)
class LogSource:
    """Whose an execution is, where its run writes ``stdout`` and ``stderr``, and whether
    the run is over (its files will not grow any more)."""

    requester: str
    folder: Path
    ended: bool


class LogSources(Protocol):
    def log_source(self, execution_id: str) -> LogSource | None:
        """None: the node does not hold the execution (never did, or forgot it)."""
        ...


class Sender(Protocol):
    def send(self, node_id: str, message: Message) -> None: ...


@dataclass(frozen=True)
class LogServerConfig:
    wait_s: float = 5.0  # an ask with nothing new is answered empty after this
    poll_s: float = 0.1  # how often waiting asks look at their files
    idle_s: float = 60.0  # an execution's files are closed when not asked about this long
    max_pending: int = 256  # asks waiting at once, across requesters
    max_open: int = 128  # executions whose files are held open


@dataclass(frozen=True)
class _Ask:
    requester: str
    request: ExecutionLogsRequest
    since_s: float


class _Files:
    """One execution's output files, opened as they appear, read at offsets."""

    def __init__(self, requester: str, folder: Path, now_s: float) -> None:
        self.requester = requester
        self.folder = folder
        self.used_s = now_s
        self._files: dict[str, BinaryIO] = {}

    def size(self, stream: str) -> int:
        file = self._file(stream)
        return os.fstat(file.fileno()).st_size if file is not None else 0

    def read(self, stream: str, offset: int, length: int) -> bytes:
        file = self._files.get(stream)
        return os.pread(file.fileno(), length, offset) if file is not None else b""

    def reader(self, stream: str) -> ReadAt:
        return lambda offset, length: self.read(stream, offset, length)

    def _file(self, stream: str) -> BinaryIO | None:
        if stream not in self._files:
            try:
                self._files[stream] = (self.folder / stream).open("rb")
            except OSError:
                return None  # not written yet (inputs still staging), or gone
        return self._files[stream]

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()


_IGNORED = object()  # an ask that gets no answer at all


class LogServer:
    """Answers ExecutionLogsRequest on one thread of its own; ``handle`` only queues."""

    def __init__(
        self,
        sources: LogSources,
        outbox: Sender,
        config: LogServerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sources = sources
        self._outbox = outbox
        self._config = config or LogServerConfig()
        self._clock = clock
        self._asks: dict[tuple[str, str], _Ask] = {}  # by (requester, StreamID)
        self._files: dict[str, _Files] = {}  # by execution, used by the server thread only
        self._cond = threading.Condition()
        self._news = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.answered = 0
        self.refused = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="logs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for files in self._files.values():
            files.close()
        self._files.clear()

    def pending(self) -> int:
        """Asks waiting for an answer now."""
        with self._cond:
            return len(self._asks)

    def handle(self, sender: str, request: ExecutionLogsRequest) -> None:
        """Queue an ask (bus thread): a later ask of the same follow replaces a waiting one."""
        source = self._sources.log_source(request.execution_id)
        if source is not None and source.requester != sender:
            _not_its_requester(request.execution_id, sender, source.requester)
            return
        key = (sender, request.stream_id)
        with self._cond:
            full = key not in self._asks and len(self._asks) >= self._config.max_pending
            if not full:
                self._asks[key] = _Ask(sender, request, self._clock())
                self._news = True
                self._cond.notify_all()
        if full:
            self._send(sender, _refusal(request, "too many followed executions on this node"))

    # -- the server thread ---------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._cond:
                waiting = bool(self._asks or self._files)
                timeout_s = self._config.poll_s if waiting else None
                self._cond.wait_for(lambda: self._news or self._stopping, timeout_s)
                if self._stopping:
                    return
                self._news = False
                asks = list(self._asks.values())
            now_s = self._clock()
            for ask in asks:
                answer = self._answer_safely(ask, now_s)
                if answer is None:
                    continue
                with self._cond:
                    key = (ask.requester, ask.request.stream_id)
                    if self._asks.get(key) is ask:  # not replaced by a newer ask meanwhile
                        del self._asks[key]
                if isinstance(answer, ExecutionLogs):
                    self._finish(answer, ask)
            self._close_idle(now_s)

    def _answer_safely(self, ask: _Ask, now_s: float) -> ExecutionLogs | object | None:
        try:
            return self._answer(ask, now_s)
        except Exception:
            # a file that cannot be read, say: this ask fails, never the server
            log.exception("event=logs_failed execution=%s", ask.request.execution_id)
            return _refusal(ask.request, "the node could not read the execution's output")

    def _answer(self, ask: _Ask, now_s: float) -> ExecutionLogs | object | None:
        """The answer to ``ask`` now; None: nothing to say yet, wait."""
        request = ask.request
        files = self._files.get(request.execution_id)
        source = self._sources.log_source(request.execution_id)
        owner = source.requester if source is not None else files.requester if files else None
        if owner is None:
            return _refusal(request, "this node does not hold the execution, or its output")
        if owner != ask.requester:
            _not_its_requester(request.execution_id, ask.requester, owner)
            return _IGNORED
        ended = source is None or source.ended  # read before the sizes: then they are final
        if files is None:
            assert source is not None  # the owner came from it
            files = self._open(request.execution_id, owner, source.folder, now_s)
            if files is None:
                return _refusal(request, "too many followed executions on this node")
        files.used_s = now_s
        sizes = {stream: files.size(stream) for stream in STREAMS}
        offsets: dict[Stream, int] = {STDOUT: request.stdout_offset, STDERR: request.stderr_offset}
        tail = request.tail_lines > 0
        if tail:
            offsets = {
                stream: tail_start(sizes[stream], files.reader(stream), request.tail_lines)
                for stream in STREAMS
            }
        reads = plan_reads(offsets, sizes, request.max_bytes)
        finished = ended or not request.follow
        if not (reads or tail or finished or now_s - ask.since_s >= self._config.wait_s):
            return None
        chunks = [
            LogChunk(
                stream=read.stream,
                offset=read.offset,
                data=files.read(read.stream, read.offset, read.length),
            )
            for read in reads
        ]
        if tail:  # where each tail starts, even with no data to send yet
            read_streams = {chunk.stream for chunk in chunks}
            chunks += [
                LogChunk(stream=stream, offset=offsets[stream])
                for stream in STREAMS
                if stream not in read_streams
            ]
        end = finished and caught_up(advanced(offsets, chunks), sizes)
        return _reply_to(request, chunks=chunks, end=end)

    def _open(self, execution_id: str, owner: str, folder: Path, now_s: float) -> _Files | None:
        if len(self._files) >= self._config.max_open:
            with self._cond:
                asked = {ask.request.execution_id for ask in self._asks.values()}
            idle = [key for key in self._files if key not in asked]
            if not idle:
                return None
            oldest = min(idle, key=lambda key: self._files[key].used_s)
            self._files.pop(oldest).close()
        files = self._files[execution_id] = _Files(owner, folder, now_s)
        return files

    def _finish(self, answer: ExecutionLogs, ask: _Ask) -> None:
        """Send ``answer``; an execution whose end was sent has its files closed."""
        if answer.end and not answer.error:
            with self._cond:
                asked = any(
                    other.request.execution_id == answer.execution_id
                    for other in self._asks.values()
                )
            files = self._files.get(answer.execution_id)
            if files is not None and not asked and self._ended(answer.execution_id):
                self._files.pop(answer.execution_id).close()
        self.answered += 1
        self._send(ask.requester, answer)

    def _ended(self, execution_id: str) -> bool:
        source = self._sources.log_source(execution_id)
        return source is None or source.ended

    def _close_idle(self, now_s: float) -> None:
        with self._cond:
            asked = {ask.request.execution_id for ask in self._asks.values()}
        for execution_id, files in list(self._files.items()):
            if execution_id not in asked and now_s - files.used_s > self._config.idle_s:
                self._files.pop(execution_id).close()

    def _send(self, requester: str, message: ExecutionLogs) -> None:
        if message.error:
            self.refused += 1
        try:
            self._outbox.send(requester, message)
        except TransportError as exc:
            log.warning("event=logs_send_failed requester=%s error=%r", requester, str(exc))


def _reply_to(
    request: ExecutionLogsRequest,
    *,
    chunks: list[LogChunk] | None = None,
    end: bool = False,
    error: str = "",
) -> ExecutionLogs:
    """The answer to ``request``: its IDs and ``Seq`` echoed."""
    return ExecutionLogs(
        execution_id=request.execution_id,
        job_id=request.job_id,
        stream_id=request.stream_id,
        seq=request.seq,
        chunks=chunks or [],
        end=end,
        error=error,
    )


def _refusal(request: ExecutionLogsRequest, reason: str) -> ExecutionLogs:
    return _reply_to(request, end=True, error=reason)


def _not_its_requester(execution_id: str, sender: str, requester: str) -> None:
    log.warning(
        "event=message_from_wrong_node what='ExecutionLogsRequest' execution=%s sender=%s "
        "requester=%s",
        execution_id,
        sender,
        requester,
    )
