"""Signed envelopes: who sent a message, that the cluster admits them, and that it is new.

A signed message is ``MAGIC``, a header line ``{"Key", "Credential", "Signature"}`` (base64)
and the envelope's JSON, exactly as signed: the signature covers those bytes, so nothing is
re-serialised to check it. The receiver accepts it only if the key hashes to the envelope's
Sender, the signature holds, the admission rules admit the key, and the message is neither
older than the replay window nor one it has already seen.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections import Counter, OrderedDict
from typing import Any

from protocol.admission import Admission
from protocol.errors import MessageError
from protocol.identity import NodeIdentity, node_id_for, verify
from protocol.ids import now_ns

log = logging.getLogger("bacalao.transport")

MAGIC = b"BACALAO-SIGNED/1\n"
DEFAULT_REPLAY_WINDOW_S = 300.0
CLOCK_SKEW_S = 30.0
MAX_SENDERS_COUNTED = 4096


class RefusedMessageError(MessageError):
    """A message from a sender that is not admitted, or forged, or replayed. ``repeat`` is
    true once its sender was refused before (the bus then logs it at DEBUG only)."""

    def __init__(self, message: str, sender: str, repeat: bool) -> None:
        super().__init__(message)
        self.sender = sender
        self.repeat = repeat


class Signer:
    def __init__(self, identity: NodeIdentity, credential: bytes = b"") -> None:
        self.identity = identity
        self._header_start = (
            b'{"Key":"'
            + base64.b64encode(identity.public_key)
            + b'","Credential":"'
            + base64.b64encode(credential)
            + b'","Signature":"'
        )

    def frame(self, body: bytes) -> bytes:
        signature = base64.b64encode(self.identity.sign(body))
        return MAGIC + self._header_start + signature + b'"}\n' + body


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """A signed frame's header and body (MessageError if it is not one)."""
    header_end = data.find(b"\n", len(MAGIC))
    if not data.startswith(MAGIC) or header_end < 0:
        raise MessageError("not a signed message")
    try:
        header = json.loads(data[len(MAGIC) : header_end])
    except (ValueError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict):
        raise MessageError("signed message: the header is not a JSON object")
    return header, data[header_end + 1 :]


class ReplayGuard:
    """Refuses a message older than ``window_s`` (or from further ahead than the clock skew
    allows) and any message ID seen within the window. Memory: the IDs of one window."""

    def __init__(self, window_s: float = DEFAULT_REPLAY_WINDOW_S) -> None:
        self._window_ns = int(window_s * 1e9)
        self._skew_ns = int(CLOCK_SKEW_S * 1e9)
        self._seen: OrderedDict[str, int] = OrderedDict()  # ID -> arrival, oldest first
        self._lock = threading.Lock()

    def check(self, message_id: str, sent_at_ns: int, now: int | None = None) -> str | None:
        """None if the message is new; else why it is refused."""
        now = now_ns() if now is None else now
        if sent_at_ns < now - self._window_ns:
            return f"older than the replay window ({(now - sent_at_ns) / 1e9:.0f}s)"
        if sent_at_ns > now + self._skew_ns:
            return "sent from the future (clock skew beyond the allowance)"
        with self._lock:
            horizon = now - self._window_ns - self._skew_ns
            while self._seen:
                oldest_id, arrived = next(iter(self._seen.items()))
                if arrived >= horizon:
                    break
                del self._seen[oldest_id]
            if message_id in self._seen:
                return "replayed (this message ID was seen already)"
            self._seen[message_id] = now
        return None

    def __len__(self) -> int:
        return len(self._seen)


def load_object(data: bytes) -> dict[str, Any]:
    """``data`` as a JSON object; MessageError if it is not one."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MessageError("envelope is not a JSON object")
    return body


UNSIGNED = "(unsigned)"
"""The ``Verifier.refused`` key of unsigned messages: who sent one cannot be known."""


def _claimed_sender(data: bytes) -> str:
    """The ``Sender`` an unsigned envelope names, for the log only (it proves nothing)."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "an unreadable sender"
    sender = body.get("Sender") if isinstance(body, dict) else None
    return repr(sender[:64]) if isinstance(sender, str) else "no sender"


class Verifier:
    """Checks signed frames; counts refusals by sender (``refused``)."""

    def __init__(self, admission: Admission, replay: ReplayGuard | None = None) -> None:
        self._admission = admission
        self._replay = replay or ReplayGuard()
        self._admitted: dict[tuple[bytes, bytes], bool] = {}
        self.refused: Counter[str] = Counter()

    def open(self, data: bytes) -> dict[str, Any]:
        """The checked envelope body of ``data``; MessageError when it cannot be trusted."""
        if not data.startswith(MAGIC):
            claimed = _claimed_sender(data)
            why = f"unsigned message claiming to be from {claimed} (signatures are required)"
            raise self._refuse(UNSIGNED, why)
        header, signed = split(data)
        try:
            key = base64.b64decode(str(header.get("Key", "")), validate=True)
            credential = base64.b64decode(str(header.get("Credential", "")), validate=True)
            signature = base64.b64decode(str(header.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):  # ValueError: a str that is not ASCII
            raise MessageError("signed message: a header field is not base64") from None
        body = load_object(signed)
        sender = str(body.get("Sender"))
        if len(key) != 32 or node_id_for(key) != sender:
            raise self._refuse(sender, "its signing key is not the sender's")
        if not verify(key, signature, signed):
            raise self._refuse(sender, "bad signature")
        if not self._admits(sender, key, credential):
            raise self._refuse(sender, "not admitted to this cluster (token or allow-list)")
        sent_at = body.get("SentAt")
        if not isinstance(sent_at, int) or not isinstance(body.get("ID"), str):
            raise MessageError("envelope fields ID and SentAt are missing or malformed")
        replayed = self._replay.check(body["ID"], sent_at)
        if replayed is not None:
            raise self._refuse(sender, replayed)
        return body

    def _admits(self, sender: str, key: bytes, credential: bytes) -> bool:
        known = self._admitted.get((key, credential))
        if known is None:
            known = self._admission.admits(sender, key, credential)
            if len(self._admitted) < 65536:
                self._admitted[(key, credential)] = known
        return known

    def _refuse(self, sender: str, why: str) -> RefusedMessageError:
        repeat = sender in self.refused
        if not repeat and len(self.refused) >= MAX_SENDERS_COUNTED:
            sender, repeat = "(others)", True  # made-up senders must not grow memory
        self.refused[sender] += 1
        return RefusedMessageError(f"refused message from {sender}: {why}", sender, repeat)
