"""Length-prefixed frames on a TCP stream: a 4-byte big-endian length, then a JSON object.

Every frame is a JSON object with a ``t`` (type) key. A frame longer than ``MAX_FRAME_BYTES``
cannot be skipped safely, so it ends the connection; a frame that is not a JSON object with a
known ``t`` is only dropped.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024

HELLO = "hello"
PEERS = "peers"
BIND = "bind"
UNBIND = "unbind"
PUT = "put"
FANOUT = "fanout"
TYPES = frozenset({HELLO, PEERS, BIND, UNBIND, PUT, FANOUT})


class FrameError(Exception):
    """A frame that does not parse; the stream itself is still in step."""


class StreamError(Exception):
    """The stream is broken (closed mid-frame, or a length over the limit)."""


def encode(kind: str, **fields: Any) -> bytes:
    body = json.dumps({"t": kind, **fields}, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(body)} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    """The frame's object; FrameError when it is not a JSON object of a known type."""
    try:
        frame = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise FrameError("not a JSON object")
    if frame.get("t") not in TYPES:
        raise FrameError(f"unknown frame type {frame.get('t')!r}")
    return frame


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1024 * 1024))
        if not chunk:
            raise StreamError("connection closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_body(sock: socket.socket) -> bytes:
    """The next frame's body, blocking. StreamError when the stream cannot go on."""
    (length,) = HEADER.unpack(_read_exactly(sock, HEADER.size))
    if length > MAX_FRAME_BYTES:
        raise StreamError(f"frame of {length} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return _read_exactly(sock, length)
