"""``peer://``: a broker-free kombu transport over direct TCP between nodes."""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES

ALIAS = "peer"
TRANSPORT = "protocol.peer.kombu_transport:Transport"


def register() -> None:
    """Make ``peer://`` URLs resolve to our transport in kombu (idempotent)."""
    TRANSPORT_ALIASES.setdefault(ALIAS, TRANSPORT)
