"""Who may consume a node's queue on ``peer://``: only the node itself, proven by its key;
and every control frame (HELLO, PEERS) signed by the node whose hub sends it.

On a broker, a queue is the broker's; on ``peer://`` a queue lives on the hub that says it
binds it, and a hub that said so for another node's queue would receive that node's
messages. So every binding of a ``bprotocol.<node ID>`` (or ``bprotocol.gossip.<node ID>``)
queue carries a claim: the node's public key and cluster credential, the hub address it is
bound at, a time, and the node's Ed25519 signature over them. A receiving hub routes a node's
queue only to the address of that node's newest valid claim: a stranger (not admitted), an
admitted node claiming another's queue, or an old claim replayed, moves nothing. A node that
restarts on another address makes a newer claim, which wins.

Other queues (none of bacalao's) are not claimed; with ``--insecure`` nothing is checked.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from protocol.errors import MessageError
from protocol.identity import node_id_for, verify
from protocol.ids import now_ns
from protocol.signing import Signer, Verifier

# the names of a node's queues (protocol.transport names them with these)
NODE_QUEUE_PREFIX = "bprotocol."
GOSSIP_QUEUE_PREFIX = "bprotocol.gossip."
_PURPOSE = b"bacalao-queue-claim/1\n"
_FRAME_PURPOSE = b"bacalao-peer-frame/1\n"


def queue_owner(queue: str) -> str | None:
    """The node whose queue ``queue`` is, by its name; None for a queue of nobody's."""
    for prefix in (GOSSIP_QUEUE_PREFIX, NODE_QUEUE_PREFIX):
        if queue.startswith(prefix):
            return queue[len(prefix) :] or None
    return None


def _fields(proof: dict[str, Any], what: str) -> tuple[bytes, bytes, bytes]:
    """A proof's key, credential and signature (``k``, ``c``, ``s``, base64)."""
    try:
        key, credential, signature = (
            base64.b64decode(str(proof.get(name, "")), validate=True) for name in "kcs"
        )
    except (binascii.Error, ValueError):
        raise MessageError(f"{what}: a field is not base64") from None
    if len(key) != 32:
        raise MessageError(f"{what}: the key is not a public key")
    return key, credential, signature


def _signed(queue: str, address: str, at_ns: int) -> bytes:
    return _PURPOSE + f"{queue}\n{address}\n{at_ns}".encode()


class QueueClaims:
    """Makes this node's claims (with ``signer``) and checks others' (with ``verifier``)."""

    def __init__(self, signer: Signer | None, verifier: Verifier | None) -> None:
        self._signer = signer
        self._verifier = verifier

    def required(self, queue: str) -> bool:
        """Whether a binding of ``queue`` counts only with a valid claim."""
        return self._verifier is not None and queue_owner(queue) is not None

    def make(self, queue: str, address: str) -> dict[str, Any] | None:
        """This node's claim to ``queue`` at hub ``address``; None for a queue not its own."""
        signer = self._signer
        if signer is None or queue_owner(queue) != signer.identity.node_id:
            return None
        at_ns = now_ns()
        signature = signer.identity.sign(_signed(queue, address, at_ns))
        return {
            "k": base64.b64encode(signer.identity.public_key).decode(),
            "c": base64.b64encode(signer.credential).decode(),
            "t": at_ns,
            "s": base64.b64encode(signature).decode(),
        }

    def sign(self, data: bytes) -> dict[str, Any] | None:
        """This node's signature over a control frame's ``data`` (None: no key to sign with)."""
        signer = self._signer
        if signer is None:
            return None
        return {
            "k": base64.b64encode(signer.identity.public_key).decode(),
            "c": base64.b64encode(signer.credential).decode(),
            "s": base64.b64encode(signer.identity.sign(_FRAME_PURPOSE + data)).decode(),
        }

    def verify(self, data: bytes, proof: Any) -> str:
        """The admitted node that signed a control frame's ``data``; MessageError if none."""
        if self._verifier is None:
            return ""
        if not isinstance(proof, dict):
            raise MessageError("not signed by its node")
        key, credential, signature = _fields(proof, "control frame")
        node = self._verifier.admitted_node(key, credential)
        if not verify(key, signature, _FRAME_PURPOSE + data):
            raise MessageError("bad signature")
        return node

    def check(self, queue: str, address: str, claim: Any) -> int:
        """The claim's time if it proves ``queue``'s node binds it at ``address``; raises
        MessageError saying why not."""
        if self._verifier is None:
            return 0
        if not isinstance(claim, dict):
            raise MessageError(f"binding of {queue!r} without its node's claim")
        at_ns = claim.get("t")
        if not isinstance(at_ns, int):
            raise MessageError(f"claim to {queue!r}: no time")
        key, credential, signature = _fields(claim, f"claim to {queue!r}")
        if node_id_for(key) != queue_owner(queue):  # _fields checked it is a key
            raise MessageError(f"claim to {queue!r} made by another node's key")
        self._verifier.admitted_node(key, credential)  # refused: not admitted
        if not verify(key, signature, _signed(queue, address, at_ns)):
            raise MessageError(f"claim to {queue!r}: bad signature")
        return at_ns
