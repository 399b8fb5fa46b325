"""What a followed execution's output looks like on the wire, and the rules both ends share.

A requester follows a running execution's stdout and stderr by asking its compute node for
what was written past two byte offsets (``ExecutionLogsRequest``); each answer
(``ExecutionLogs``) carries at most :data:`MAX_CHUNK_BYTES` of data in :class:`LogChunk`\\ s,
one per stream at most, each saying at which byte offset of its stream it starts. Data
travels as base64 (a program may write any bytes; the envelope is JSON).

:func:`tail_start` is where "the last N lines" of a stream begin: the compute node applies
it to a file it reads block by block from the end, the requester and the CLI to output they
hold, so ``--tail`` means the same everywhere.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer

from protocol.wire import WireModel

Stream = Literal["stdout", "stderr"]
STDOUT: Stream = "stdout"
STDERR: Stream = "stderr"
STREAMS: tuple[Stream, Stream] = (STDOUT, STDERR)

MAX_CHUNK_BYTES = 64 * 1024  # data in one ExecutionLogs message, all its chunks together
MAX_TAIL_LINES = 100_000
TAIL_BLOCK_BYTES = 8 * 1024
# How far back from the end a tail looks for its lines: a stream with fewer newlines in its
# last MiB starts a MiB before its end (mid-line), so finding a tail never reads a whole file.
TAIL_SCAN_MAX_BYTES = 1024 * 1024


def _from_base64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value  # built in Python, not read from the wire
    if not isinstance(value, str):
        raise ValueError("must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None


def _to_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


LogBytes = Annotated[
    bytes, BeforeValidator(_from_base64), PlainSerializer(_to_base64, return_type=str)
]


class LogChunk(WireModel):
    """``Data``: the bytes of ``Stream`` from byte ``Offset`` on (it may be empty: an answer
    to a tail says where each stream's tail starts)."""

    stream: Stream = Field(alias="Stream")
    offset: int = Field(ge=0, alias="Offset")
    data: LogBytes = Field(default=b"", alias="Data")

    @property
    def end(self) -> int:
        """The offset just past this chunk's data."""
        return self.offset + len(self.data)


ReadAt = Callable[[int, int], bytes]  # (offset, length) -> at most length bytes


def tail_start(
    size: int,
    read_at: ReadAt,
    lines: int,
    *,
    block_bytes: int = TAIL_BLOCK_BYTES,
    max_scan_bytes: int = TAIL_SCAN_MAX_BYTES,
) -> int:
    """The offset where the last ``lines`` lines of ``size`` bytes begin (0 lines: the end).

    A newline ending the data does not start another line: the last 2 lines of
    ``a\\nb\\nc\\n`` are ``b\\nc\\n``. Reads back from the end ``block_bytes`` at a time and
    never further than ``max_scan_bytes``."""
    if lines <= 0 or size <= 0:
        return size
    floor = max(0, size - max_scan_bytes)
    position = size
    # a newline that ends the data is the last line's own; every other one before it starts
    # a line, and the one that starts the (lines)th from the end is the last one needed
    needed = lines + 1 if read_at(size - 1, 1) == b"\n" else lines
    while position > floor:
        start = max(floor, position - block_bytes)
        block = read_at(start, position - start)
        index = len(block)
        while needed and index > 0:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            needed -= 1
            if needed == 0:
                return start + index + 1
        position = start
    return floor


def tail_of(data: bytes, lines: int) -> bytes:
    """The last ``lines`` lines of ``data`` (all of it for 0), as :func:`tail_start` counts."""
    if lines <= 0:
        return data
    start = tail_start(
        len(data),
        lambda offset, length: data[offset : offset + length],
        lines,
        max_scan_bytes=len(data),
    )
    return data[start:]
