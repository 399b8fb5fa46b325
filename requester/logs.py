"""The requester's side of following an execution's output: ``job logs --follow``.

Each follower (an API request) gets a session (:mod:`requester.log_session`). It waits
until the job has an execution running (:func:`~requester.log_buffer.pick_execution`),
then asks that execution's node for its output with ``ExecutionLogsRequest`` over the bus;
the node's ``ExecutionLogs`` answers come back to :meth:`LogRelay.handle` on the bus
thread, into the session's buffer, which the follower takes from::

    follower <-take- LogSession buffer <-ExecutionLogs- bus <-- compute node (compute/logs.py)
                         \\--ExecutionLogsRequest (offsets, MaxBytes = room)--^

Bounded: one ask at a time per session, asking for at most the room left in its buffer, so
the buffer never holds more than ``buffer_bytes`` of output; a session asks again only once
there is room, so a follower that reads slowly slows the node to its pace and one that stops
reading stops the node. A session nobody took from for ``abandon_s`` is closed, and at most
``max_sessions`` are open. An answer may be lost (the bus only promises its timeouts): one
later than ``answer_timeout_s`` is asked for again, and an answer to an older ask (its
``Seq``), from another node, or that leaves a gap in a stream is dropped. Only the node the
execution was given to is heard.

When the node cannot serve (its run ended before the ask, and its files are gone), or the
execution has ended in the store already (``job logs`` without ``--follow``), the session
reads the stored RunOutput (the node's truncated copy) and sends what it holds past the
offsets reached, then ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.errors import BacalaoError
from protocol.messages import ExecutionLogs, ExecutionLogsRequest
from requester.log_session import Jobs, LogSession, Sender

log = logging.getLogger("bacalao.requester")


class FollowRefusedError(BacalaoError):
    """The requester follows as many executions as it may: try again later."""


@dataclass(frozen=True)
class LogRelayConfig:
    buffer_bytes: int = 256 * 1024  # output a session holds for its follower, at most
    answer_timeout_s: float = 15.0  # an ask unanswered this long is asked again
    abandon_s: float = 60.0  # a session nobody took from this long is closed
    tick_s: float = 0.2  # how often sessions waiting on the store look at it
    max_sessions: int = 128


class LogRelay:
    """Every open session of this requester, and the ticker that drives them."""

    def __init__(
        self,
        jobs: Jobs,
        outbox: Sender,
        config: LogRelayConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = jobs
        self._outbox = outbox
        self.config = config or LogRelayConfig()
        self.now = clock
        self._sessions: dict[str, LogSession] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def answer_timeout_s(self) -> float:
        return self.config.answer_timeout_s

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-relay", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the ticker and end every session (their followers get an error)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for session in self.sessions():
            session.abort("the requester is shutting down")

    def sessions(self) -> list[LogSession]:
        with self._lock:
            return list(self._sessions.values())

    def open(
        self,
        job_id: str,
        execution_id: str | None = None,
        *,
        follow: bool = True,
        tail_lines: int = 0,
        buffer_bytes: int | None = None,
    ) -> LogSession:
        """A session following ``execution_id`` of ``job_id`` (None: the one that runs);
        FollowRefusedError when ``max_sessions`` are open."""
        session = LogSession(
            self,
            job_id,
            execution_id,
            follow=follow,
            tail_lines=tail_lines,
            buffer_bytes=buffer_bytes or self.config.buffer_bytes,
            now_s=self.now(),
        )
        with self._lock:
            if len(self._sessions) >= self.config.max_sessions:
                raise FollowRefusedError(
                    f"this requester follows {len(self._sessions)} executions' logs already, "
                    "as many as it may: try again later"
                )
            self._sessions[session.id] = session
        session.tick(self.jobs, self.now())  # an ended execution is answered at once
        return session

    def discard(self, session: LogSession) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def send(self, node_id: str, message: ExecutionLogsRequest) -> None:
        self._outbox.send(node_id, message)

    def handle(self, sender: str, message: ExecutionLogs) -> None:
        """An ExecutionLogs from a compute node (bus thread)."""
        with self._lock:
            session = self._sessions.get(message.stream_id)
        if session is None or session.execution_id != message.execution_id:
            log.debug("event=logs_unexpected sender=%s stream=%s", sender, message.stream_id)
            return
        session.answer(sender, message)

    def _run(self) -> None:
        while not self._stopping.wait(self.config.tick_s):
            self.sweep()

    def sweep(self) -> None:
        """Close abandoned sessions and tick the rest (the ticker calls this every tick)."""
        now_s = self.now()
        for session in self.sessions():
            if now_s - session.taken_s >= self.config.abandon_s:
                log.info("event=logs_abandoned execution=%s", session.execution_id)
                session.abort(f"nobody read the logs for {self.config.abandon_s:g}s")
                continue
            try:
                session.tick(self.jobs, now_s)
            except Exception:  # one session's trouble (the store, say) is not the rest's
                log.exception("event=logs_tick_failed execution=%s", session.execution_id)
