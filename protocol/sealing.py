"""Sealed envelopes: a message to one node that only that node can read.

Each node has an X25519 agreement key, derived from its identity's seed, and vouches for it
with its signing key: the certificate is the Ed25519 signature of ``AGREEMENT_CONTEXT`` and
the agreement key. Every frame a node sends carries both, so a receiver learns a peer's
agreement key from any message it accepted from that peer (gossip included).

To a peer whose agreement key it knows, a node sends ``SEALED_MAGIC``, a header line
``{Key, Credential, Agreement, Certificate, Nonce}`` (base64) and the envelope encrypted with
ChaCha20-Poly1305, the header line authenticated with it. The key is one direction's: HKDF-SHA256
of the X25519 secret over the sender's signing and agreement keys, then the recipient's. Only
the sender could have made such a frame and only the recipient opens it, so one that opens
proves its sender as a signature would, for a few microseconds instead of an Ed25519 signature
and its check; sent back to its sender or on to a third node, it does not open.

The keys are static: whoever steals a node's ``node.key`` can read what was sealed to it
(recorded traffic included: there is no forward secrecy) and seal to it in any peer's name.
Nonces are random (96 bits), which keeps a direction's key safe for about 2**32 messages.
Broadcasts (gossip) and messages to a node not heard from yet stay signed plaintext
(:mod:`protocol.signing`).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.bounded import LRUCache
from protocol.identity import NodeIdentity, verify

SEALED_MAGIC = b"BACALAO-SEALED/1\n"
AGREEMENT_CONTEXT = b"bacalao-agreement/1\x00"
SEAL_CONTEXT = b"bacalao-seal/1\x00"
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_PEERS = 65536  # peers, certificates and ciphers remembered (least recently used out)

Peer = tuple[bytes, bytes]
"""A peer's signing key and agreement key."""


class UnsealableError(Exception):
    """A sealed frame that does not open here: altered, sealed to another node, or made with
    an agreement key that is not a valid X25519 point."""


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


class Agreement:
    """This node's agreement key and certificate, and the agreement keys of its peers."""

    def __init__(self, identity: NodeIdentity, capacity: int = MAX_PEERS) -> None:
        self._private = X25519PrivateKey.from_private_bytes(identity.derive_key("x25519-agreement"))
        self.public_key = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.certificate = identity.sign(AGREEMENT_CONTEXT + self.public_key)
        self._own: Peer = (identity.public_key, self.public_key)
        self._peers: LRUCache[str, Peer] = LRUCache(capacity)  # node ID -> its keys
        self._vouched: LRUCache[tuple[bytes, bytes, bytes], bool] = LRUCache(capacity)
        self._sealers: LRUCache[Peer, ChaCha20Poly1305] = LRUCache(capacity)  # to a peer
        self._openers: LRUCache[Peer, ChaCha20Poly1305] = LRUCache(capacity)  # from a peer

    @property
    def header_fields(self) -> bytes:
        """``"Agreement":"…","Certificate":"…"``, for a frame header."""
        return (
            b'"Agreement":"'
            + _b64(self.public_key)
            + b'","Certificate":"'
            + _b64(self.certificate)
            + b'"'
        )

    def vouched(self, signing_key: bytes, agreement: bytes, certificate: bytes) -> bool:
        """Whether ``certificate`` is ``signing_key``'s signature of ``agreement`` (a valid
        one is remembered; a forged one is checked again each time, so it fills nothing)."""
        entry = (signing_key, agreement, certificate)
        if self._vouched.get(entry):
            return True
        valid = len(agreement) == KEY_BYTES and verify(
            signing_key, certificate, AGREEMENT_CONTEXT + agreement
        )
        if valid:
            self._vouched.put(entry, True)
        return valid

    def learn(self, node_id: str, signing_key: bytes, agreement: bytes) -> None:
        """Seal to ``node_id`` from now on. Call only with keys from a message accepted from
        that node, its agreement key vouched for by its signing key."""
        peer = (signing_key, agreement)
        if self._peers.get(node_id) == peer:
            return
        try:
            sealer, opener = self._pair(peer)
        except UnsealableError:
            return  # a low-order point, or our own keys: nothing to seal to, so stay signed
        self._sealers.put(peer, sealer)
        self._openers.put(peer, opener)
        self._peers.put(node_id, peer)

    def peer(self, node_id: str) -> Peer | None:
        """``node_id``'s keys, if a message from it told us."""
        return self._peers.get(node_id)

    def seal(self, header: bytes, body: bytes, peer: Peer) -> bytes:
        """A sealed frame of ``body`` to ``peer``; ``header`` is the header line's JSON
        without its closing ``,"Nonce":"…"}``."""
        sealer = self._sealers.get(peer)
        if sealer is None:
            sealer, opener = self._pair(peer)
            self._sealers.put(peer, sealer)
            self._openers.put(peer, opener)
        nonce = os.urandom(NONCE_BYTES)
        line = SEALED_MAGIC + header + b',"Nonce":"' + _b64(nonce) + b'"}\n'
        return line + sealer.encrypt(nonce, body, line)

    def open(self, line: bytes, nonce: bytes, sealed: bytes, peer: Peer) -> bytes:
        """The body of a frame ``peer`` sealed to this node (UnsealableError if it does not
        open). ``line`` is the frame's header line, newline included. The pair's ciphers are
        remembered only once a frame opened."""
        if len(nonce) != NONCE_BYTES:
            raise UnsealableError(f"the nonce is {len(nonce)} bytes, not {NONCE_BYTES}")
        opener = self._openers.get(peer)
        sealer = None
        if opener is None:
            sealer, opener = self._pair(peer)
        try:
            body = opener.decrypt(nonce, sealed, line)
        except InvalidTag:
            raise UnsealableError("it does not open (sealed to another node, or altered)") from None
        if sealer is not None:
            self._openers.put(peer, opener)
            self._sealers.put(peer, sealer)
        return body

    def _pair(self, peer: Peer) -> tuple[ChaCha20Poly1305, ChaCha20Poly1305]:
        """The ciphers of the two directions between this node and ``peer``: to it, from it."""
        if peer[1] == self.public_key:
            raise UnsealableError("it is sealed with this node's own agreement key")
        try:
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(peer[1]))
        except ValueError:  # not 32 bytes, or a low-order point (an all-zero secret)
            raise UnsealableError("its agreement key is not a usable X25519 key") from None

        def direction(sender: Peer, recipient: Peer) -> ChaCha20Poly1305:
            info = SEAL_CONTEXT + sender[0] + sender[1] + recipient[0] + recipient[1]
            return ChaCha20Poly1305(HKDF(SHA256(), KEY_BYTES, salt=None, info=info).derive(shared))

        return direction(self._own, peer), direction(peer, self._own)
