"""Capabilities for the results server: a published result is served only to a request that
carries the token its URL was given (``?sig=...``), not to anyone who can guess the path.

The token is an HMAC of the archive's name under a key only the node holds (derived from its
identity key), so it needs no storage, survives restarts, and cannot be made for another
result. Whoever holds a result's URL holds the result: the requester hands it out only
through its API, to callers it admits.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

QUERY_PARAM = "sig"
_TOKEN_HEX = 32  # 128 bits


class ResultLinks:
    """Signs and checks the capability of each published result's URL."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a result link key needs at least 16 bytes")
        self._key = key

    def token(self, name: str) -> str:
        digest = hmac.new(self._key, b"bacalao-result\x00" + name.encode(), hashlib.sha256)
        return digest.hexdigest()[:_TOKEN_HEX]

    def allows(self, name: str, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token(name).encode())

    def url(self, base_url: str, name: str) -> str:
        return f"{base_url.rstrip('/')}/{quote(name)}?{QUERY_PARAM}={self.token(name)}"
