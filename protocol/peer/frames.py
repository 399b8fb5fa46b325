"""Length-prefixed frames on a TCP stream: a 4-byte big-endian length, then a JSON object.

Every frame is a JSON object with a ``t`` (type) key. A frame longer than ``MAX_FRAME_BYTES``
cannot be skipped safely, so it ends the connection; a frame that is not a JSON object with a
known ``t`` is only dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
import time
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


SEAL_WINDOW_S = 300.0


def _mac(secret: bytes, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def seal(secret: bytes | None, kind: str, **fields: Any) -> bytes:
    """A control frame, signed with the cluster secret (when there is one) and stamped, so
    only nodes that know the secret can join, announce bindings or name peers."""
    if secret is None:
        return encode(kind, **fields)
    stamped = {"t": kind, **fields, "ts": time.time()}
    return encode(kind, **fields, ts=stamped["ts"], mac=_mac(secret, stamped))


def check_seal(secret: bytes | None, frame: dict[str, Any]) -> None:
    """FrameError unless ``frame`` carries a valid, recent signature (no secret: no check)."""
    if secret is None:
        return
    fields = {key: value for key, value in frame.items() if key != "mac"}
    mac = frame.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(secret, fields)):
        raise FrameError(f"{frame.get('t')} frame without a valid cluster-secret signature")
    stamp = fields.get("ts")
    if not isinstance(stamp, int | float) or abs(time.time() - stamp) > SEAL_WINDOW_S:
        raise FrameError(f"{frame.get('t')} frame signed too long ago")


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
    except RecursionError:
        raise FrameError("nested too deeply") from None
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
