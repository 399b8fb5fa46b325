"""The broker-free side of ``peer://``: one hub per node, holding the queues that node consumes.

A hub listens on TCP. Peers introduce themselves with a HELLO carrying their advertised
address, their queue bindings and the peers they know; a node that knows one bootstrap peer
learns the rest, because every hub passes new addresses on (PEERS). Then:

- a message for a direct exchange goes to the hub that owns the bound queue (PUT),
- a fanout message goes to every known peer (FANOUT), each delivering to its own bound queues,
- binding changes spread as BIND / UNBIND.

Inbound frames are read by one thread per connection; outbound frames go through one
:class:`~protocol.peer.link.PeerLink` per peer. Queues are bounded; so are send buffers.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from queue import Empty
from typing import Any, Protocol

from kombu.transport.virtual.base import BrokerState

from protocol.errors import MessageError, TransportError, UnknownPeerError
from protocol.peer import frames
from protocol.peer.config import PeerConfig
from protocol.peer.link import BufferFullError, PeerLink, shutdown_socket

log = logging.getLogger("bacalao.peer")

Binding = tuple[str, str, str]  # exchange, routing key, queue


class Claims(frames.FrameSigner, Protocol):
    """Which queues only their owner may bind, and the owner's proof (a claim) that it does
    (see :mod:`protocol.queue_claims`); control frames signed by the node."""

    def required(self, queue: str) -> bool: ...

    def make(self, queue: str, address: str) -> dict[str, Any] | None: ...

    def check(self, queue: str, address: str, claim: Any) -> int:
        """The claim's time; MessageError when it does not prove the binding."""
        ...


@dataclass
class _Claimed:
    """A claimed queue: where its owner's newest valid claim says it is bound."""

    at_ns: int
    address: str
    bindings: set[tuple[str, str]] = field(default_factory=set)  # (exchange, routing key)


@dataclass
class _Queue:
    messages: deque[tuple[float | None, dict[str, Any]]] = field(default_factory=deque)


def _expires_at(message: dict[str, Any], now: float) -> float | None:
    """When the message dies: its ``expiration`` property (milliseconds, as AMQP and
    kombu spell it), counted from its arrival here; None when it has none or it is bad."""
    properties = message.get("properties")
    expiration = properties.get("expiration") if isinstance(properties, dict) else None
    try:
        return now + float(expiration) / 1000 if expiration is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class _Routes:
    """Remote bindings indexed for publishing: rebuilt only when a binding changes."""

    owners: dict[str, str] = field(default_factory=dict)  # queue -> peer address
    queues: dict[tuple[str, str], list[str]] = field(default_factory=dict)


class PeerHub:
    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.id = secrets.token_hex(8)
        self.state = BrokerState()  # type: ignore[no-untyped-call]
        self.address = ""
        self.dropped_frames = 0
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._generation = 0
        self._queues: dict[str, _Queue] = {}
        self._local: set[Binding] = set()
        self._remote: dict[str, set[Binding]] = {}  # of queues nobody claims
        self._claimed: dict[str, _Claimed] = {}  # queue -> its owner's newest claim
        self._claims_out: dict[str, dict[str, Any]] = {}  # our queues -> our claim
        self.refused_bindings = 0
        self._routes: _Routes | None = None  # None: stale, rebuild from _remote
        self._links: dict[str, PeerLink] = {}
        self._ignored: set[str] = set()
        self._heard_from: set[str] = set()
        self._inbound: set[socket.socket] = set()
        self._closing = threading.Event()
        self._server: socket.socket | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        try:
            server = socket.create_server((self.config.host, self.config.port), backlog=64)
        except OSError as exc:
            raise TransportError(
                f"peer transport cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        self._server = server
        self.address = self.config.advertised(server.getsockname()[1])
        threading.Thread(
            target=self._accept, name=f"peer-listen-{self.address}", daemon=True
        ).start()
        threading.Thread(target=self._forget_dead_peers, name="peer-janitor", daemon=True).start()
        log.info(
            "event=peer_listening address=%s bootstrap=%s",
            self.address,
            ",".join(self.config.bootstrap) or "-",
        )
        self._learn(self.config.bootstrap)

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            shutdown_socket(self._server)
            self._server.close()
        with self._lock:
            links = list(self._links.values())
            inbound = list(self._inbound)
            self._arrived.notify_all()
        for link in links:
            link.close()
        for sock in inbound:
            shutdown_socket(sock)

    @property
    def peers(self) -> list[str]:
        with self._lock:
            return sorted(self._links)

    def connected_peers(self) -> list[str]:
        with self._lock:
            return sorted(address for address, link in self._links.items() if link.connected)

    def settled(self) -> bool:
        """Every known peer is linked both ways: our link is up and its HELLO came in."""
        with self._lock:
            return all(
                link.connected and address in self._heard_from
                for address, link in self._links.items()
            )

    def wait_settled(self, timeout_s: float) -> bool:
        """Wait (bounded) until :meth:`settled`, so a node that just started already gets
        the broadcasts its peers send next. Unreachable peers only cost the timeout."""
        deadline = time.monotonic() + timeout_s
        while not self.settled():
            if time.monotonic() >= deadline or self._closing.is_set():
                return False
            time.sleep(0.01)
        return True

    # -- queues (the consuming side) -----------------------------------------------------

    def declare_queue(self, name: str) -> None:
        with self._lock:
            self._queues.setdefault(name, _Queue())

    def has_queue(self, name: str) -> bool:
        with self._lock:
            return name in self._queues

    def size(self, name: str) -> int:
        with self._lock:
            queue = self._queues.get(name)
            return len(queue.messages) if queue else 0

    def purge(self, name: str) -> int:
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                return 0
            size = len(queue.messages)
            queue.messages.clear()
            return size

    def delete_queue(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name, None)
            gone = [binding for binding in self._local if binding[2] == name]
            self._local.difference_update(gone)
            self._claims_out.pop(name, None)
        for binding in gone:
            self._broadcast(frames.encode(frames.UNBIND, addr=self.address, b=list(binding)))

    def bind(
        self, exchange: str, routing_key: str, queue: str, claims: Claims | None = None
    ) -> None:
        """Bind ``queue`` here; ``claims`` (the binding connection's) proves it is ours."""
        binding = (exchange, routing_key or "", queue)
        with self._lock:
            if binding in self._local:
                return
            self._local.add(binding)
            claim = self._claims_out.get(queue)
            if claim is None and claims is not None:
                claim = claims.make(queue, self.address)
                if claim is not None:
                    self._claims_out[queue] = claim
        fields: dict[str, Any] = {"addr": self.address, "b": list(binding)}
        if claim is not None:
            fields["c"] = claim
        self._broadcast(frames.encode(frames.BIND, **fields))

    def get(self, name: str) -> dict[str, Any]:
        """The next live message of a local queue; ``queue.Empty`` when there is none."""
        now = time.monotonic()
        with self._lock:
            queue = self._queues.get(name)
            while queue is not None and queue.messages:
                expires, message = queue.messages.popleft()
                if expires is None or expires > now:
                    return message
        raise Empty()

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def wait_for_messages(self, seen: int, timeout_s: float) -> None:
        """Block until a message arrived after ``seen`` (a :meth:`generation`) or timeout."""
        with self._lock:
            if self._generation == seen and not self._closing.is_set():
                self._arrived.wait(timeout_s)

    def _enqueue(self, name: str, message: dict[str, Any]) -> bool:
        with self._lock:
            queue = self._queues.get(name)
            if queue is None or len(queue.messages) >= self.config.queue_max_messages:
                return False
            queue.messages.append((_expires_at(message, time.monotonic()), message))
            self._generation += 1
            self._arrived.notify_all()
            return True

    # -- routing (the publishing side) ---------------------------------------------------

    def _index(self) -> _Routes:
        """The route index (caller holds the lock); bindings change rarely, messages often."""
        if self._routes is None:
            routes = _Routes()
            for address, bindings in sorted(self._remote.items()):
                for exchange, key, queue in bindings:
                    routes.owners.setdefault(queue, address)
                    routes.queues.setdefault((exchange, key), []).append(queue)
            for queue, claimed in self._claimed.items():
                routes.owners[queue] = claimed.address
                for exchange, key in claimed.bindings:
                    routes.queues.setdefault((exchange, key), []).append(queue)
            for route, found in routes.queues.items():
                routes.queues[route] = sorted(set(found))
            self._routes = routes
        return self._routes

    def _remote_changed(self) -> None:
        self._routes = None

    def owner(self, queue: str) -> str | None:
        """The peer that holds ``queue``: "" for this hub, None when nobody known does."""
        with self._lock:
            if queue in self._queues:
                return ""
            return self._index().owners.get(queue)

    def remote_queues(self, exchange: str, routing_key: str) -> list[str]:
        with self._lock:
            return list(self._index().queues.get((exchange, routing_key), ()))

    def put(self, queue: str, message: dict[str, Any]) -> None:
        owner = self.owner(queue)
        if owner is None:
            known = ", ".join(self.peers) or "none"
            raise UnknownPeerError(f"no known peer holds queue {queue!r} (known peers: {known})")
        if owner == "":
            if not self._enqueue(queue, message):
                raise TransportError(f"queue {queue!r} is full")
            return
        with self._lock:
            link = self._links.get(owner)
        if link is None:
            raise UnknownPeerError(f"peer {owner} holding queue {queue!r} has no link")
        link.send(frames.encode(frames.PUT, q=queue, m=message))

    def fanout(self, exchange: str, message: dict[str, Any]) -> None:
        self._deliver_fanout(exchange, message)
        frame = frames.encode(frames.FANOUT, x=exchange, m=message)
        self._broadcast(frame)

    def _deliver_fanout(self, exchange: str, message: dict[str, Any]) -> None:
        with self._lock:
            queues = sorted({queue for ex, _, queue in self._local if ex == exchange})
        for queue in queues:
            if not self._enqueue(queue, message):
                log.warning("event=peer_message_dropped queue=%s reason=full", queue)

    def _broadcast(self, frame: bytes) -> None:
        with self._lock:
            links = list(self._links.values())
        for link in links:
            try:
                link.send(frame)
            except BufferFullError as exc:
                log.warning("event=peer_frame_dropped peer=%s reason=%r", link.address, str(exc))
            except TransportError:
                continue

    # -- peers ---------------------------------------------------------------------------

    def _hello(self) -> bytes:
        with self._lock:
            bindings: list[list[Any]] = []
            for binding in sorted(self._local):
                claim = self._claims_out.get(binding[2])
                bindings.append([*binding, claim] if claim is not None else list(binding))
            peers = sorted(self._links)
        return frames.seal(
            self.config.secret,
            frames.HELLO,
            self.config.claims,
            id=self.id,
            addr=self.address,
            bindings=bindings,
            peers=peers,
        )

    def _learn(self, addresses: Any) -> None:
        new: list[str] = []
        with self._lock:
            if self._closing.is_set():
                return
            for address in addresses:
                if not isinstance(address, str) or ":" not in address:
                    continue
                if address in (self.address, *self._links, *self._ignored):
                    continue
                if len(self._links) >= self.config.max_peers:
                    log.warning("event=peer_ignored address=%s reason=max_peers", address)
                    continue
                link = PeerLink(
                    address,
                    self._hello,
                    max_frames=self.config.send_buffer_frames,
                    connect_timeout_s=self.config.connect_timeout_s,
                    backoff_s=self.config.backoff_s,
                    backoff_max_s=self.config.backoff_max_s,
                )
                self._links[address] = link
                new.append(address)
                link.start()
        if new:
            log.info("event=peer_learned address=%s peers=%s", self.address, ",".join(new))
            self._broadcast(
                frames.seal(self.config.secret, frames.PEERS, self.config.claims, peers=new)
            )

    def _forget_dead_peers(self) -> None:
        """Drop peers (not bootstrap ones) unreachable for ``forget_after_s``, with their
        bindings: a node that left for good stops costing a reconnect loop and buffer."""
        period = min(5.0, self.config.forget_after_s / 4)
        while not self._closing.wait(period):
            now = time.monotonic()
            with self._lock:
                dead = [
                    link
                    for address, link in self._links.items()
                    if address not in self.config.bootstrap
                    and link.down_since is not None
                    and now - link.down_since > self.config.forget_after_s
                ]
                for link in dead:
                    del self._links[link.address]
                    self._remote.pop(link.address, None)
                    for queue in [q for q, c in self._claimed.items() if c.address == link.address]:
                        del self._claimed[queue]
                    self._remote_changed()
                    self._heard_from.discard(link.address)
            for link in dead:
                link.close()
                log.info("event=peer_forgotten address=%s", link.address)

    def _forget_self_link(self, sock: socket.socket) -> None:
        """A HELLO with our own id came in: one of our links (a bootstrap alias of this very
        node) points back at us. Find it by its socket address and drop it."""
        peer_name = sock.getpeername()[:2]
        with self._lock:
            for address, link in list(self._links.items()):
                if link.local_address == peer_name:
                    del self._links[address]
                    self._ignored.add(address)
                    break
            else:
                return
        link.close()
        log.info("event=peer_self_link_dropped address=%s", address)

    # -- inbound -------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closing.is_set():
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._inbound.add(sock)
            threading.Thread(target=self._read, args=(sock,), daemon=True).start()

    def _read(self, sock: socket.socket) -> None:
        sender = ""
        sock.settimeout(self.config.hello_timeout_s)  # a peer introduces itself at once
        try:
            while not self._closing.is_set():
                body = frames.read_body(sock)
                try:
                    frame = frames.decode(body)
                    sender = self._handle(sock, frame, sender) or sender
                    if sender:
                        sock.settimeout(None)
                except (
                    frames.FrameError,
                    KeyError,
                    TypeError,
                    ValueError,
                    RecursionError,
                    ArithmeticError,
                ) as exc:
                    self.dropped_frames += 1
                    log.warning(
                        "event=peer_frame_dropped from=%s reason=%r", sender or "?", str(exc)
                    )
        except (frames.StreamError, OSError) as exc:
            if not self._closing.is_set():
                log.debug("event=peer_inbound_closed from=%s reason=%r", sender or "?", exc)
        finally:
            with self._lock:
                self._inbound.discard(sock)
            sock.close()

    def _unclaimed(self, address: str, binding: Binding, claim: Any) -> bool:
        """Take in a binding that ``address`` announced (caller holds the lock): True for a
        queue nobody claims, which goes with that address's other bindings. A claimed queue
        moves to ``address`` only on a valid claim no older than the one it follows; any
        other is refused (counted, logged)."""
        checker = self.config.claims
        exchange, key, queue = binding
        if checker is None or not checker.required(queue):
            return True
        try:
            at_ns = checker.check(queue, address, claim)
        except MessageError as exc:
            self.refused_bindings += 1
            log.warning("event=peer_binding_refused address=%s reason=%r", address, str(exc))
            return False
        current = self._claimed.get(queue)
        if current is not None and current.at_ns > at_ns:
            self.refused_bindings += 1
            log.warning(
                "event=peer_binding_refused address=%s queue=%s reason='an older claim'",
                address,
                queue,
            )
            return False
        if current is None or current.address != address:
            current = self._claimed[queue] = _Claimed(at_ns, address)
        current.at_ns = at_ns
        current.bindings.add((exchange, key))
        return False

    def _handle(self, sock: socket.socket, frame: dict[str, Any], sender: str) -> str:
        kind = frame["t"]
        if kind in (frames.HELLO, frames.PEERS):
            frames.check_seal(self.config.secret, frame, self.config.claims)
        if kind == frames.HELLO:
            if frame["id"] == self.id:
                self._forget_self_link(sock)
                return ""
            address = _text(frame["addr"])
            if not isinstance(frame["bindings"], list):
                raise frames.FrameError("HELLO bindings are not a list")
            items = [_binding(item) for item in frame["bindings"]]
            with self._lock:
                self._remote[address] = {
                    binding for binding, claim in items if self._unclaimed(address, binding, claim)
                }
                self._remote_changed()
                self._heard_from.add(address)
            self._learn([address, *frame["peers"]])
            return address
        if kind == frames.PEERS:
            self._learn(frame["peers"])
        elif not sender:
            raise frames.FrameError(f"{kind} frame before HELLO")
        elif kind in (frames.BIND, frames.UNBIND):
            binding, _ = _binding(frame["b"])
            with self._lock:
                bindings = self._remote.setdefault(sender, set())
                if kind == frames.UNBIND:
                    bindings.discard(binding)  # a claimed queue stays where its claim says
                elif self._unclaimed(sender, binding, frame.get("c")):
                    bindings.add(binding)
                self._remote_changed()
        elif kind == frames.PUT:
            queue = _text(frame["q"])
            if not isinstance(frame["m"], dict):
                raise frames.FrameError("PUT message is not an object")
            if not self._enqueue(queue, frame["m"]):
                log.warning(
                    "event=peer_message_dropped queue=%s reason=no such queue or full", queue
                )
        elif kind == frames.FANOUT:
            if not isinstance(frame["m"], dict):
                raise frames.FrameError("FANOUT message is not an object")
            self._deliver_fanout(_text(frame["x"]), frame["m"])
        return sender


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise frames.FrameError(f"expected a string, got {type(value).__name__}")
    return value


def _binding(value: Any) -> tuple[Binding, Any]:
    """A binding, and the claim that may follow it: ``[exchange, routing_key, queue(, claim)]``."""
    if not isinstance(value, list) or len(value) not in (3, 4):
        raise frames.FrameError("a binding is [exchange, routing_key, queue] and maybe a claim")
    claim = value[3] if len(value) == 4 else None
    return (_text(value[0]), _text(value[1]), _text(value[2])), claim


# -- one hub per node and process, shared by that node's kombu connections ---------------

_hubs: dict[str, tuple[PeerHub, int]] = {}
_hubs_lock = threading.Lock()


def acquire(config: PeerConfig) -> PeerHub:
    with _hubs_lock:
        hub, refs = _hubs.get(config.key, (None, 0))
        if hub is None:
            hub = PeerHub(config)
            hub.start()
        _hubs[config.key] = (hub, refs + 1)
        return hub


def release(hub: PeerHub) -> None:
    with _hubs_lock:
        current, refs = _hubs.get(hub.config.key, (None, 0))
        if current is not hub:
            return
        if refs > 1:
            _hubs[hub.config.key] = (hub, refs - 1)
            return
        del _hubs[hub.config.key]
    hub.close()
