"""The pure parts of following an execution's output on the requester: what a follower is
told (:class:`LogEvent`), the bounded buffer it is told through, which part of an answer is
new, which execution of a job to follow, and what a stored RunOutput adds.

A follower's API answer is NDJSON, one :meth:`LogEvent.to_wire` object per line::

    {"ExecutionID": "e-...", "NodeID": "n-..."}               the execution followed
    {"Type": 1, "Stream": "stdout", "Offset": 0, "Line": "hello\\n"}   output (Type 2: stderr)
    {}                                                        nothing new (keeps it open)
    {"End": true, "ExecutionID": "e-..."}                     the execution ended
    {"Error": "..."}                                          why it cannot be followed

``Type`` and ``Line`` are Bacalhau's ``ExecutionLog`` fields; ``Line`` is the text as it
came (any number of lines, or part of one), ``Offset`` its byte offset in the stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from protocol.execution import Execution
from protocol.logs import STDOUT
from protocol.states import ExecutionStateType as S

EXECUTION = "execution"
DATA = "data"
END = "end"
ERROR = "error"
FOLLOWED_STATES = (S.RUNNING, S.PUBLISHING)  # a node is asked for the output of these


@dataclass(frozen=True)
class LogEvent:
    kind: str
    stream: str = ""
    offset: int = 0
    text: str = ""
    execution_id: str = ""
    node_id: str = ""
    message: str = ""

    def to_wire(self) -> dict[str, Any]:
        if self.kind == DATA:
            kind = 1 if self.stream == STDOUT else 2
            return {"Type": kind, "Stream": self.stream, "Offset": self.offset, "Line": self.text}
        if self.kind == EXECUTION:
            return {"ExecutionID": self.execution_id, "NodeID": self.node_id}
        if self.kind == END:
            return {"End": True, "ExecutionID": self.execution_id}
        return {"Error": self.message}


class LogBuffer:
    """Events waiting for their follower, holding at most ``limit_bytes`` of output (events
    that carry none take no room). A push that does not fit is refused, not cut."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError("limit_bytes must be at least 1")
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self.peak_bytes = 0  # the most it ever held, for tests and /debug
        self._events: deque[tuple[LogEvent, int]] = deque()

    @property
    def room(self) -> int:
        return self.limit_bytes - self.used_bytes

    def push(self, event: LogEvent, size_bytes: int = 0, force: bool = False) -> bool:
        """Add ``event``; ``force``: even past the limit (what is bounded elsewhere)."""
        if size_bytes > self.room and not force:
            return False
        self._events.append((event, size_bytes))
        self.used_bytes += size_bytes
        self.peak_bytes = max(self.peak_bytes, self.used_bytes)
        return True

    def take(self) -> list[LogEvent]:
        taken = [event for event, _ in self._events]
        self._events.clear()
        self.used_bytes = 0
        return taken

    def __len__(self) -> int:
        return len(self._events)


def fresh_part(expected: int, offset: int, data: bytes) -> bytes | None:
    """What of ``data`` (bytes from ``offset`` on) a reader that has read up to ``expected``
    has not seen: empty when all of it is old, None when it starts past ``expected`` (what
    lies between was lost: the reader must ask again from ``expected``)."""
    if offset > expected:
        return None
    return data[expected - offset :]


def pick_execution(executions: Iterable[Execution], job_ended: bool) -> Execution | None:
    """The execution of a job to follow: the first to run of those running now; once the
    job ended, its first completed one, else the latest that ended with output. None: wait
    (the job is not running yet), or nothing to show (it ended without output)."""
    listed = sorted(executions, key=lambda execution: (execution.create_time, execution.id))
    running = [execution for execution in listed if execution.state in FOLLOWED_STATES]
    if running:
        return running[0]
    if not job_ended:
        return None
    completed = [execution for execution in listed if execution.state == S.COMPLETED]
    if completed:
        return completed[0]
    ended = [e for e in listed if e.state.terminal and e.run_output is not None]
    return max(ended, key=lambda e: (e.modify_time, e.id)) if ended else None


def stored_output(execution: Execution, stream: str) -> bytes:
    """What the stored RunOutput holds of ``stream`` (the node's truncated copy), as bytes,
    so it continues a follow at the byte offset the follow reached."""
    output = execution.run_output
    if output is None:
        return b""
    return (output.stdout if stream == STDOUT else output.stderr).encode()
