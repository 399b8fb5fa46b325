"""Who may speak in a cluster: nodes that know the cluster token, or that an allow-list names.

A token admits a node through a credential, ``HMAC(token, public key)``, that only holders of
the token can make and that each message carries; an allow-list names node IDs or public
keys (base64) one per line, ``#`` comments allowed. A node is admitted if any rule admits it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from protocol.errors import ValidationError
from protocol.identity import node_id_for

TOKEN_PREFIX = "bct-"  # noqa: S105 (a label, not a secret)
MIN_TOKEN_LENGTH = 16


class Admission(Protocol):
    def admits(self, node_id: str, public_key: bytes, credential: bytes) -> bool: ...


def generate_token() -> str:
    """A new cluster token, as the requester makes on its first start."""
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


class ClusterToken:
    """Admits the holders of ``token`` (any string of at least 16 characters)."""

    def __init__(self, token: str) -> None:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValidationError(
                "cluster-token", f"must be at least {MIN_TOKEN_LENGTH} characters long"
            )
        self._key = hashlib.sha256(b"bacalao-cluster-token\x00" + token.encode()).digest()

    def credential(self, public_key: bytes) -> bytes:
        return hmac.new(self._key, public_key, hashlib.sha256).digest()

    def admits(self, node_id: str, public_key: bytes, credential: bytes) -> bool:
        return hmac.compare_digest(credential, self.credential(public_key))


class AllowList:
    """Admits the nodes it names, by node ID or public key."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.node_ids: set[str] = set()
        for number, raw in enumerate(entries, 1):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            if entry.startswith("n-"):
                self.node_ids.add(entry)
                continue
            try:
                key = base64.b64decode(entry, validate=True)
            except binascii.Error:
                key = b""
            if len(key) != 32:
                raise ValidationError(
                    f"allow-nodes line {number}",
                    f"{entry[:40]!r} is neither a node ID (n-...) nor a base64 public key",
                )
            self.node_ids.add(node_id_for(key))

    @classmethod
    def from_file(cls, path: Path) -> AllowList:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError("allow-nodes", f"cannot read {path}: {exc.strerror}") from None
        return cls(text.splitlines())

    def admits(self, node_id: str, public_key: bytes, credential: bytes) -> bool:
        return node_id in self.node_ids


class AnyOf:
    def __init__(self, rules: Sequence[Admission]) -> None:
        self._rules = tuple(rules)

    def admits(self, node_id: str, public_key: bytes, credential: bytes) -> bool:
        return any(rule.admits(node_id, public_key, credential) for rule in self._rules)
