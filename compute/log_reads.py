"""What one answer to an ExecutionLogsRequest reads: pure, so its bounds are tested alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.logs import STREAMS, LogChunk, Stream


@dataclass(frozen=True)
class Read:
    stream: Stream
    offset: int
    length: int


def plan_reads(
    offsets: Mapping[Stream, int], sizes: Mapping[Stream, int], max_bytes: int
) -> list[Read]:
    """The reads of one answer: each stream from its offset towards its size, ``max_bytes``
    in all. Each stream is granted half, and what one does not need goes to the other, so a
    stream that floods cannot starve the other. An offset past a stream's size (the
    requester asked beyond it) reads nothing."""
    waiting = {stream: max(0, sizes.get(stream, 0) - offsets.get(stream, 0)) for stream in STREAMS}
    share = max(0, max_bytes) // len(STREAMS)
    granted = {stream: min(waiting[stream], share) for stream in STREAMS}
    spare = max(0, max_bytes) - sum(granted.values())
    for stream in STREAMS:
        extra = min(spare, waiting[stream] - granted[stream])
        granted[stream] += extra
        spare -= extra
    return [
        Read(stream, offsets.get(stream, 0), granted[stream])
        for stream in STREAMS
        if granted[stream] > 0
    ]


def advanced(offsets: Mapping[Stream, int], chunks: Sequence[LogChunk]) -> dict[Stream, int]:
    """Each stream's offset once ``chunks`` are read: past the last chunk of that stream."""
    after = {stream: offsets.get(stream, 0) for stream in STREAMS}
    for chunk in chunks:
        after[chunk.stream] = chunk.end
    return after


def caught_up(offsets: Mapping[Stream, int], sizes: Mapping[Stream, int]) -> bool:
    """Whether every stream was read to its size."""
    return all(offsets.get(stream, 0) >= sizes.get(stream, 0) for stream in STREAMS)
