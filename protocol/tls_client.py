"""What an HTTPS client trusts, and why its handshake failed: shared by the CLI's API client
and ``job get``'s downloads from a results server.

By default a client trusts the system's certificate store (OpenSSL's default paths, so
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` work as with curl), falling back to certifi's bundle on a
machine whose store is empty; given a private CA's PEM file, it trusts only that CA.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi


def default_trust() -> ssl.SSLContext:
    """The system's CAs, or certifi's where the system has none installed."""
    context = ssl.create_default_context()
    if not context.cert_store_stats().get("x509_ca"):
        context.load_verify_locations(cafile=certifi.where())
    return context


def private_trust(ca_file: Path) -> ssl.SSLContext:
    """Trust only the CA(s) in ``ca_file``. Raises OSError or ssl.SSLError when it holds none."""
    return ssl.create_default_context(cafile=str(ca_file))


@dataclass(frozen=True)
class HandshakeFailure:
    reason: str
    # the server's certificate did not verify; otherwise the handshake itself failed (a plain
    # HTTP server answering an https:// URL, no common protocol version, ...)
    untrusted: bool


def handshake_failure(exc: BaseException) -> HandshakeFailure | None:
    """The TLS failure behind a failed connection, or None when TLS is not why it failed."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return HandshakeFailure(cause.verify_message or str(cause), untrusted=True)
        if isinstance(cause, ssl.SSLError):
            return HandshakeFailure(cause.reason or str(cause), untrusted=False)
        cause = cause.__cause__ or cause.__context__
    return None
