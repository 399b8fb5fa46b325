"""A node's identity: an Ed25519 key pair, created on first start in the node's data dir.

The node ID is derived from the public key, so an ID is self-certifying: a receiver checks
that a message's signing key hashes to the sender it names, and needs no key directory
(and no race with gossip) to know who signed it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_FILE = "node.key"
SEED_BYTES = 32


@lru_cache(maxsize=4096)  # every message names its sender's key: hash each key once
def node_id_for(public_key: bytes) -> str:
    """The node ID of ``public_key`` (raw 32 bytes): ``n-`` and a UUID-shaped digest."""
    digest = hashlib.sha256(b"bacalao-node-id\x00" + public_key).digest()
    return f"n-{uuid.UUID(bytes=digest[:16], version=4)}"


class NodeIdentity:
    """A private key and what derives from it: the public key and the node ID."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"a node key is {SEED_BYTES} bytes, not {len(seed)}")
        self._seed = seed
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.node_id = node_id_for(self.public_key)

    @classmethod
    def generate(cls) -> NodeIdentity:
        return cls(secrets.token_bytes(SEED_BYTES))

    @classmethod
    def load_or_create(cls, folder: Path) -> NodeIdentity:
        """The key in ``folder/node.key``, written (mode 0600) on first start."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / KEY_FILE
        if not path.exists():
            path.touch(mode=0o600)
            path.write_bytes(secrets.token_bytes(SEED_BYTES))
        seed = path.read_bytes()
        try:
            return cls(seed)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}; remove it to make a new identity") from None

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte secret for ``purpose``, the same on every start, known only to this node
        (HMAC-SHA256 of the purpose under the private key's seed)."""
        return hmac.new(self._seed, b"bacalao-derived\x00" + purpose.encode(), "sha256").digest()


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s over ``data``."""
    try:
        _public(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@lru_cache(maxsize=4096)
def _public(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)
