"""Parse ``peer://HOST:PORT?bootstrap=H:P,H:P&advertise=H:P`` into a :class:`PeerConfig`."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from protocol.errors import ValidationError

DEFAULT_PORT = 7000
WILDCARDS = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True)
class PeerConfig:
    """Where a node listens, the address it gives peers, and who it asks first.

    ``port`` 0 picks a free port; the advertised address then uses the port really bound.
    """

    host: str
    port: int
    bootstrap: tuple[str, ...] = ()
    advertise: str = ""
    send_buffer_frames: int = 10_000
    queue_max_messages: int = 100_000
    connect_timeout_s: float = 2.0
    backoff_s: float = 0.1
    backoff_max_s: float = 2.0
    forget_after_s: float = 600.0
    hello_timeout_s: float = 10.0
    max_peers: int = 1024
    secret: bytes | None = field(default=None, repr=False)
    # who may bind which queue (protocol.queue_claims.QueueClaims); None: anyone
    claims: Any = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Identifies one hub per process: connections with the same key share it."""
        secret = hashlib.sha256(self.secret).hexdigest()[:16] if self.secret else ""
        return f"{self.host}:{self.port}|{','.join(self.bootstrap)}|{self.advertise}|{secret}"

    def advertised(self, bound_port: int) -> str:
        if self.advertise:
            return self.advertise
        host = self.host
        if host in WILDCARDS:
            host = socket.gethostbyname(socket.gethostname())
        return f"{host}:{bound_port}"


def parse_address(text: str, field: str) -> str:
    """``host:port`` checked; the port must be a number in 1..65535."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(field, f"{text!r} is not host:port")
    return f"{host}:{int(port)}"


def parse_peer_url(url: str) -> PeerConfig:
    parts = urlsplit(url)
    if parts.scheme != "peer":
        raise ValidationError("broker", f"{url!r} is not a peer:// URL")
    try:
        port = parts.port
    except ValueError:
        raise ValidationError("broker", f"{url!r}: the port is not a number") from None
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"bootstrap", "advertise"})
    if unknown:
        raise ValidationError("broker", f"{url!r}: unknown option(s) {', '.join(unknown)}")
    bootstrap = tuple(
        parse_address(item, "broker bootstrap")
        for value in query.get("bootstrap", [])
        for item in value.split(",")
        if item.strip()
    )
    advertise = query.get("advertise", [""])[-1]
    return PeerConfig(
        host=parts.hostname or "0.0.0.0",
        port=DEFAULT_PORT if port is None else port,
        bootstrap=bootstrap,
        advertise=parse_address(advertise, "broker advertise") if advertise else "",
    )
