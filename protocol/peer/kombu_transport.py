"""``peer://`` as a kombu virtual transport: the Channel API mapped onto a :class:`PeerHub`.

``Connection("peer://0.0.0.0:7000?bootstrap=10.0.0.5:7000")`` works like any kombu URL once
:func:`protocol.peer.register` has run (importing ``protocol.transport`` does it). All
connections of a process with the same URL share one hub, so a node's consuming and
publishing connections see the same queues and bindings.
"""

from __future__ import annotations

import dataclasses
import time
from queue import Empty
from typing import Any

from kombu.transport import virtual

from protocol.errors import TransportError, UnknownPeerError
from protocol.peer import hub as hubs
from protocol.peer.config import DEFAULT_PORT, PeerConfig, parse_peer_url


class Channel(virtual.Channel):
    supports_fanout = True
    do_restore = False

    @property
    def hub(self) -> hubs.PeerHub:
        hub: hubs.PeerHub = self.connection.hub
        return hub

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        self.hub.declare_queue(queue)

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return self.hub.has_queue(queue)

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        return self.hub.get(queue)

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        self.hub.put(queue, message)

    def _put_fanout(
        self, exchange: str, message: dict[str, Any], routing_key: str, **kwargs: Any
    ) -> None:
        self.hub.fanout(exchange, message)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        claims = self.connection.client.transport_options.get("queue_claims")
        self.hub.bind(exchange, routing_key, queue, claims)

    def _size(self, queue: str) -> int:
        return self.hub.size(queue)

    def _purge(self, queue: str) -> int:
        return self.hub.purge(queue)

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        self.hub.delete_queue(queue)

    def _lookup(self, exchange: str, routing_key: str, default: str | None = None) -> list[str]:
        queues: list[str] = list(super()._lookup(exchange, routing_key, default))
        if queues or not exchange or self.typeof(exchange).type != "direct":
            return queues
        queues = self.hub.remote_queues(exchange, routing_key)
        if not queues:
            raise UnknownPeerError(
                f"no known peer consumes {exchange!r} with routing key {routing_key!r} "
                f"(known peers: {', '.join(self.hub.peers) or 'none'})"
            )
        return queues


class Transport(virtual.Transport):
    Channel = Channel
    can_parse_url = True
    default_port = DEFAULT_PORT  # type: ignore[assignment]
    driver_type = "peer"
    driver_name = "peer"
    polling_interval = 0.05
    connection_errors = (*virtual.Transport.connection_errors, OSError)  # type: ignore[assignment]
    channel_errors = (*virtual.Transport.channel_errors, UnknownPeerError)  # type: ignore[assignment]
    implements = virtual.Transport.implements.extend(
        exchange_type=frozenset(["direct", "topic", "fanout"])
    )

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        options = client.transport_options
        self.config: PeerConfig = dataclasses.replace(
            parse_peer_url(_url_of(client)),
            secret=options.get("cluster_secret") or None,
            claims=options.get("queue_claims"),
        )
        self.hub: hubs.PeerHub | None = None

    def establish_connection(self) -> Any:
        if self.hub is None:
            self.hub = hubs.acquire(self.config)
            self.state = self.hub.state
        return super().establish_connection()

    def close_connection(self, connection: Any) -> None:
        super().close_connection(connection)
        if self.hub is not None:
            hubs.release(self.hub)
            self.hub = None

    def verify_connection(self, connection: Any) -> bool:
        return self.hub is not None

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> None:
        """Deliver one message, waiting on the hub for arrivals instead of polling."""
        if self.hub is None or self.cycle is None:
            raise TransportError("peer transport is not connected")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self.hub.generation()
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            remaining = self.polling_interval
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
                if remaining <= 0:
                    raise TimeoutError()
            self.hub.wait_for_messages(seen, remaining)

    def driver_version(self) -> str:
        return "1"


def _url_of(client: Any) -> str:
    hostname = str(client.hostname or "")
    if hostname.startswith("peer://"):
        return hostname
    port = client.port or DEFAULT_PORT
    return f"peer://{hostname or '0.0.0.0'}:{port}"
