"""Length-prefixed frames on a TCP stream: a 4-byte big-endian length, then a JSON object.

Every frame is a JSON object with a ``t`` (type) key. A frame longer than ``MAX_FRAME_BYTES``
cannot be skipped safely, so it ends the connection; a frame that is not a JSON object with a
known ``t`` is only dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import socket
import struct
import time
from typing import Any, Protocol

from protocol.errors import MessageError

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


class FrameSigner(Protocol):
    """Signs control frames as this node, and checks that another node signed one."""

    def sign(self, data: bytes) -> dict[str, Any] | None: ...

    def verify(self, data: bytes, proof: Any) -> str:
        """The signing node's ID; MessageError when ``proof`` does not hold."""
        ...


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _mac(secret: bytes, fields: dict[str, Any]) -> str:
    return hmac.new(secret, _canonical(fields), hashlib.sha256).hexdigest()


def seal(
    secret: bytes | None, kind: str, signer: FrameSigner | None = None, **fields: Any
) -> bytes:
    """A control frame, stamped, signed by this node (``signer``) and MACed with the cluster
    secret, when there are those: only admitted nodes can join, announce bindings or name
    peers, each in its own name."""
    if secret is None and signer is None:
        return encode(kind, **fields)
    stamped: dict[str, Any] = {"t": kind, **fields, "ts": time.time()}
    proof = signer.sign(_canonical(stamped)) if signer is not None else None
    if proof is not None:
        stamped["sig"] = proof
    if secret is not None:
        stamped["mac"] = _mac(secret, stamped)
    del stamped["t"]
    return encode(kind, **stamped)


def check_seal(
    secret: bytes | None, frame: dict[str, Any], signer: FrameSigner | None = None
) -> str:
    """FrameError unless ``frame`` carries a valid MAC (with a ``secret``), its node's valid
    signature (with a ``signer`` to check it) and a recent stamp; the signing node's ID ("" when
    nothing is checked)."""
    if secret is None and signer is None:
        return ""
    fields = {key: value for key, value in frame.items() if key != "mac"}
    if secret is not None:
        mac = frame.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(secret, fields)):
            raise FrameError(f"{frame.get('t')} frame without a valid cluster-secret signature")
    node = ""
    if signer is not None:
        unsigned = {key: value for key, value in fields.items() if key != "sig"}
        try:
            node = signer.verify(_canonical(unsigned), fields.get("sig"))
        except MessageError as exc:
            raise FrameError(f"{frame.get('t')} frame: {exc}") from None
    stamp = fields.get("ts")
    if (
        not isinstance(stamp, int | float)
        or not math.isfinite(stamp)
        or abs(time.time() - stamp) > SEAL_WINDOW_S
    ):
        raise FrameError(f"{frame.get('t')} frame signed too long ago")
    return node


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
