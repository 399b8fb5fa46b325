"""Signed envelopes: who sent a message, that the cluster admits them, and that it is new.

A signed message is ``MAGIC``, a header line ``{"Key", "Credential", "Agreement",
"Certificate", "Signature"}`` (base64) and the envelope's JSON, exactly as signed: the
signature covers those bytes, so nothing is re-serialised to check it. A message to a node
whose agreement key is known travels sealed instead (:mod:`protocol.sealing`): encrypted to
that node, which authenticates it as the signature would. The receiver accepts a message only
if the key hashes to the envelope's Sender, the signature holds (or the seal opens), the
admission rules admit the key, and the message is neither older than the replay window nor
one it has already seen.
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
from protocol.bounded import LRUCache
from protocol.errors import MessageError
from protocol.identity import NodeIdentity, node_id_for, verify
from protocol.ids import now_ns
from protocol.sealing import SEALED_MAGIC, Agreement, UnsealableError

log = logging.getLogger("bacalao.transport")

MAGIC = b"BACALAO-SIGNED/1\n"
DEFAULT_REPLAY_WINDOW_S = 300.0
CLOCK_SKEW_S = 30.0
MAX_SENDERS_COUNTED = 4096
MAX_ADMISSIONS_KEPT = 65536


class RefusedMessageError(MessageError):
    """A message from a sender that is not admitted, or forged, or replayed. ``repeat`` is
    true once its sender was refused before (the bus then logs it at DEBUG only)."""

    def __init__(self, message: str, sender: str, repeat: bool) -> None:
        super().__init__(message)
        self.sender = sender
        self.repeat = repeat


class Signer:
    """Frames envelopes as this node: sealed to a peer whose agreement key ``agreement``
    knows, signed otherwise."""

    def __init__(
        self, identity: NodeIdentity, credential: bytes = b"", agreement: Agreement | None = None
    ) -> None:
        self.identity = identity
        self.credential = credential
        self.agreement = agreement
        fields = (
            b'{"Key":"'
            + base64.b64encode(identity.public_key)
            + b'","Credential":"'
            + base64.b64encode(credential)
            + b'"'
        )
        if agreement is not None:
            fields += b"," + agreement.header_fields
        self._fields = fields
        self._header_start = fields + b',"Signature":"'

    def frame(self, body: bytes, to: str | None = None) -> bytes:
        """``body`` sealed to node ``to`` if its agreement key is known, else signed."""
        if to is not None and self.agreement is not None:
            peer = self.agreement.peer(to)
            if peer is not None:
                return self.agreement.seal(self._fields, body, peer)
        signature = base64.b64encode(self.identity.sign(body))
        return MAGIC + self._header_start + signature + b'"}\n' + body


def split(data: bytes, magic: bytes = MAGIC) -> tuple[dict[str, Any], bytes]:
    """A signed (or, with ``SEALED_MAGIC``, sealed) frame's header and what follows its
    header line (MessageError if it is not one)."""
    header_end = data.find(b"\n", len(magic))
    if not data.startswith(magic) or header_end < 0:
        raise MessageError("not a signed message")
    try:
        header = json.loads(data[len(magic) : header_end])
    except (ValueError, UnicodeDecodeError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise MessageError("signed message: the header is not a JSON object")
    return header, data[header_end + 1 :]


def _binary(header: dict[str, Any], *names: str) -> list[bytes]:
    """The header's base64 fields ``names``, decoded (a missing one is empty)."""
    try:
        return [base64.b64decode(str(header.get(name, "")), validate=True) for name in names]
    except (binascii.Error, ValueError):  # ValueError: a str that is not ASCII
        raise MessageError("signed message: a header field is not base64") from None


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
    except RecursionError:
        raise MessageError("not JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise MessageError("envelope is not a JSON object")
    return body


UNSIGNED = "(unsigned)"
"""The ``Verifier.refused`` key of unsigned messages: who sent one cannot be known."""


def _claimed_sender(data: bytes) -> str:
    """The ``Sender`` an unsigned envelope names, for the log only (it proves nothing)."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "an unreadable sender"
    sender = body.get("Sender") if isinstance(body, dict) else None
    return repr(sender[:64]) if isinstance(sender, str) else "no sender"


class Verifier:
    """Checks signed and sealed frames; counts refusals by sender (``refused``). With an
    ``agreement`` it opens frames sealed to this node and learns the agreement key of every
    peer it accepts a message from (the ``Signer`` sharing it then seals to them)."""

    def __init__(
        self,
        admission: Admission,
        replay: ReplayGuard | None = None,
        agreement: Agreement | None = None,
    ) -> None:
        self._admission = admission
        self._replay = replay or ReplayGuard()
        self._agreement = agreement
        self._admitted: LRUCache[tuple[bytes, bytes], bool] = LRUCache(MAX_ADMISSIONS_KEPT)
        self.refused: Counter[str] = Counter()

    def open(self, data: bytes, recipient: str | None = None) -> dict[str, Any]:
        """The checked envelope body of ``data``; MessageError when it cannot be trusted.
        The cheap checks come first: a stranger's frame costs no signature check. With
        ``recipient`` (this node's ID), a message addressed (``To``) to another node is
        refused: a signed message taken off one node's queue cannot be replayed to another."""
        if data.startswith(SEALED_MAGIC):
            return self._open_sealed(data, recipient)
        if not data.startswith(MAGIC):
            claimed = _claimed_sender(data)
            why = f"unsigned message claiming to be from {claimed} (signatures are required)"
            raise self._refuse(UNSIGNED, why)
        header, signed = split(data)
        key, credential, signature, agreement, certificate = _binary(
            header, "Key", "Credential", "Signature", "Agreement", "Certificate"
        )
        claimed = self.admitted_node(key, credential)
        body = load_object(signed)
        sender = str(body.get("Sender"))
        if claimed != sender:
            raise self._refuse(sender, "its signing key is not the sender's")
        if not verify(key, signature, signed):
            raise self._refuse(sender, "bad signature")
        if self._agreement is None or not (agreement or certificate):
            agreement = b""  # nothing to learn (a node that seals nothing)
        elif not self._agreement.vouched(key, agreement, certificate):
            raise self._refuse(sender, "its agreement key is not vouched for by its signing key")
        return self._accept(body, sender, key, agreement, recipient)

    def _open_sealed(self, data: bytes, recipient: str | None) -> dict[str, Any]:
        if self._agreement is None:
            raise MessageError("a sealed message, but this node has no agreement key to open it")
        header, sealed = split(data, SEALED_MAGIC)
        key, credential, agreement, certificate, nonce = _binary(
            header, "Key", "Credential", "Agreement", "Certificate", "Nonce"
        )
        claimed = self.admitted_node(key, credential)
        if not self._agreement.vouched(key, agreement, certificate):
            raise self._refuse(claimed, "its agreement key is not vouched for by its signing key")
        line = data[: len(data) - len(sealed)]
        try:
            opened = self._agreement.open(line, nonce, sealed, (key, agreement))
        except UnsealableError as exc:
            raise self._refuse(claimed, f"sealed message: {exc}") from None
        body = load_object(opened)
        if str(body.get("Sender")) != claimed:
            raise self._refuse(claimed, "it names another node as its sender")
        return self._accept(body, claimed, key, agreement, recipient)

    def admitted_node(self, key: bytes, credential: bytes) -> str:
        """The node ID of signing key ``key``, if the cluster admits it (refused otherwise)."""
        if len(key) != 32:
            raise MessageError("signed message: the header's Key is not a public key")
        sender = node_id_for(key)
        if not self._admits(sender, key, credential):
            raise self._refuse(sender, "not admitted to this cluster (token or allow-list)")
        return sender

    def _accept(
        self,
        body: dict[str, Any],
        sender: str,
        key: bytes,
        agreement: bytes,
        recipient: str | None,
    ) -> dict[str, Any]:
        """``body`` from admitted ``sender`` (whose key made it), unless it is a replay or
        addressed to a node other than ``recipient``."""
        sent_at = body.get("SentAt")
        if not isinstance(sent_at, int) or not isinstance(body.get("ID"), str):
            raise MessageError("envelope fields ID and SentAt are missing or malformed")
        to = body.get("To")
        if recipient is not None and to is not None and to != recipient:
            raise self._refuse(sender, f"addressed to {str(to)[:64]!r}, not to this node")
        replayed = self._replay.check(body["ID"], sent_at)
        if replayed is not None:
            raise self._refuse(sender, replayed)
        if agreement and self._agreement is not None:
            self._agreement.learn(sender, key, agreement)
        return body

    def _admits(self, sender: str, key: bytes, credential: bytes) -> bool:
        known = self._admitted.get((key, credential))
        if known is None:
            known = self._admission.admits(sender, key, credential)
            self._admitted.put((key, credential), known)
        return known

    def _refuse(self, sender: str, why: str) -> RefusedMessageError:
        repeat = sender in self.refused
        if not repeat and len(self.refused) >= MAX_SENDERS_COUNTED:
            sender, repeat = "(others)", True  # made-up senders must not grow memory
        self.refused[sender] += 1
        return RefusedMessageError(f"refused message from {sender}: {why}", sender, repeat)
