"""A node's link to the bprotocol, built on kombu: the URL alone chooses the backend.

Every node consumes its own queue ``bprotocol.<node_id>`` (direct exchange ``bprotocol``,
routing key = node ID) and an auto-delete queue bound to the fanout exchange
``bprotocol.gossip``. Consuming runs on one thread with its own connection; publishing uses
another connection behind a lock, because kombu connections are not thread-safe.

Several URLs separated by ``;`` are alternates, as in kombu. The bus fails over itself rather
than through kombu's ``Connection.switch`` (which cannot carry ``peer://`` query options): when
the current URL has been unreachable for ``failover_after_s`` (or at once, at start), the bus
moves to the next one and stays there, so all of a node's traffic uses one transport.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from protocol import peer
from protocol.envelope import CONTENT_TYPE, Codec, Envelope
from protocol.errors import MessageError, TransportError, UnknownPeerError, ValidationError
from protocol.messages import WIRE_NAMES, Message
from protocol.peer.config import parse_peer_url
from protocol.queue_claims import GOSSIP_QUEUE_PREFIX, NODE_QUEUE_PREFIX, QueueClaims
from protocol.signing import RefusedMessageError

peer.register()

log = logging.getLogger("bacalao.transport")

DIRECT = Exchange("bprotocol", type="direct", durable=True)
GOSSIP = Exchange("bprotocol.gossip", type="fanout", durable=False)


@dataclass(frozen=True)
class BusOptions:
    """Tuning for a bus; the defaults suit a cluster, tests shorten them."""

    connect_timeout_s: float = 5.0
    poll_timeout_s: float = 0.5
    reconnect_backoff_s: float = 0.5
    reconnect_backoff_max_s: float = 5.0
    publish_timeout_s: float = 30.0
    unknown_peer_grace_s: float = 2.0
    failover_after_s: float = 3.0
    message_ttl_s: float | None = 3600.0
    amqp_heartbeat_s: float = 10.0
    peer_settle_s: float = 3.0
    memory_polling_interval_s: float = 0.005
    # What peer:// links prove they know to join (the cluster token), when the codec has no
    # shared secret of its own.
    peer_secret: bytes | None = field(default=None, repr=False)


KNOWN_SCHEMES = frozenset({"memory", "redis", "rediss", "amqp", "pyamqp", "amqps", "peer"})
AMQP_SCHEMES = frozenset({"amqp", "pyamqp", "amqps"})
REDIS_SCHEMES = frozenset({"redis", "rediss"})


def scheme_of(url: str) -> str:
    return url.split(";", 1)[0].split("://", 1)[0].lower()


def split_urls(url: str) -> list[str]:
    """The ``;``-separated alternates of a broker URL, each checked for a known scheme."""
    urls = [part.strip() for part in url.split(";") if part.strip()]
    if not urls:
        raise ValidationError("broker", "no transport URL given")
    for part in urls:
        if "://" not in part or scheme_of(part) not in KNOWN_SCHEMES:
            raise ValidationError(
                "broker",
                f"{part!r} is not a transport URL (use {', '.join(sorted(KNOWN_SCHEMES))})",
            )
        if scheme_of(part) == "peer":
            parse_peer_url(part)  # its options are checked now, not at failover time
    return urls


def transport_options(
    url: str, options: BusOptions, claims: QueueClaims | None = None
) -> dict[str, Any]:
    """kombu's transport options for ``url``; ``claims``: how a node proves on ``peer://``
    that the queues it binds are its own, and checks that others' are."""
    scheme = scheme_of(url)
    if scheme in ("redis", "rediss"):
        return {"fanout_prefix": True, "fanout_patterns": True}
    if scheme == "memory":
        return {"polling_interval": options.memory_polling_interval_s}
    if scheme in ("amqp", "pyamqp", "amqps"):
        # A publish returns once RabbitMQ has the message (on disk for a durable queue), and a
        # broker silent for connect_timeout_s is an error to retry, not a send that hangs.
        timeout_s = options.connect_timeout_s
        return {"confirm_publish": True, "read_timeout": timeout_s, "write_timeout": timeout_s}
    if scheme == "peer":
        peer: dict[str, Any] = {"queue_claims": claims}
        if options.peer_secret:
            peer["cluster_secret"] = options.peer_secret  # peers prove they know it to join
        return peer
    return {}


def node_queue_name(node_id: str) -> str:
    return f"{NODE_QUEUE_PREFIX}{node_id}"


def node_queue(node_id: str) -> Queue:
    """A node's durable queue. The TTL rides on each message (``expiration``), not on the
    queue: a queue argument would make every node and sender agree on it forever
    (RabbitMQ refuses a redeclaration with another ``x-message-ttl``)."""
    return Queue(node_queue_name(node_id), exchange=DIRECT, routing_key=node_id, durable=True)


def gossip_queue(node_id: str) -> Queue:
    return Queue(
        f"{GOSSIP_QUEUE_PREFIX}{node_id}", exchange=GOSSIP, durable=False, auto_delete=True
    )


class Bus:
    """Send to one node, broadcast to all, and hand every decoded envelope to ``handler``.

    A message that does not decode is logged and dropped; an exception from ``handler`` is
    logged and the message acknowledged: nothing that arrives can stop the consumer.
    """

    def __init__(
        self,
        url: str,
        node_id: str,
        handler: Callable[[Envelope], None],
        codec: Codec,
        options: BusOptions | None = None,
    ) -> None:
        self.url = url
        self.urls = split_urls(url)
        self._current = 0
        self.node_id = node_id
        self._handler = handler
        self._codec = codec
        self._claims = QueueClaims(codec.signer, codec.verifier)
        self._options = options or BusOptions()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._publish_lock = threading.Lock()
        self._publisher: Connection | None = None
        self._publisher_url = ""
        self._publisher_epoch = 0
        self._declared: set[str] = set()
        self._epoch = 0
        self._acks = True  # False while consuming with no_ack (acking would cost a round trip)
        self._connected = threading.Event()
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None
        self.active_transport = scheme_of(self.urls[0])
        self.peer_address = ""
        self.dropped = 0
        self.received: Counter[str] = Counter()  # by wire type, for /metrics
        self.sent: Counter[str] = Counter()
        self.on_connected: Callable[[], None] | None = None
        self._fatal: ValidationError | None = None

    @property
    def current_url(self) -> str:
        return self.urls[self._current]

    def _connection(self, url: str, heartbeat_s: float = 0.0) -> Connection:
        return Connection(
            url,
            transport_options=transport_options(url, self._options, self._claims),
            connect_timeout=self._options.connect_timeout_s,
            heartbeat=heartbeat_s if scheme_of(url).endswith("amqp") else 0.0,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect, declare this node's queues, and start consuming."""
        self._thread = threading.Thread(
            target=self._consume_forever, name=f"bus-{self.node_id[:10]}", daemon=True
        )
        self._thread.start()
        ready = self._ready.wait(timeout_s)
        if self._fatal is not None:
            raise self._fatal
        if not ready:
            raise TransportError(f"could not reach the message bus at {self.url} in {timeout_s}s")

    def close(self) -> None:
        self._stopping.set()
        self._connected.set()  # wakes publishers waiting for a reconnect; they see _stopping
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._publish_lock:
            if self._publisher is not None:
                self._publisher.release()
                self._publisher = None
                self._producer = None

    # -- publishing ----------------------------------------------------------------------

    def send(self, node_id: str, message: Message) -> None:
        """Publish ``message`` to one node's queue."""
        self._publish(self._codec.encode(message, node_id), DIRECT, node_id)
        self.sent[WIRE_NAMES[type(message)]] += 1

    def send_many(self, node_id: str, messages: Sequence[Message]) -> None:
        """Publish ``messages`` to one node's queue, in order, batched into as few envelopes
        (and broker round trips) as their size allows."""
        for body in self._codec.encode_many(messages, node_id):
            self._publish(body, DIRECT, node_id)
        self.sent.update(WIRE_NAMES[type(message)] for message in messages)

    def _declare_target(self, routing_key: str) -> list[Queue]:
        """On a broker, declare the target's durable queue too, so a message sent while its
        consumer is away (restarting, or the broker just came back empty) waits in the
        queue until its TTL instead of being dropped for want of a binding. Declared on
        once per publisher connection, and the publisher is rebuilt whenever the consumer
        reconnects: a Redis client reconnects silently, so kombu's own declaration cache
        cannot tell that the server restarted empty. ``peer://``
        queues live on their consumer, so there is nothing to declare from afar."""
        if routing_key in self._declared or scheme_of(self.current_url) not in AMQP_SCHEMES:
            return []
        return [node_queue(routing_key)]

    def broadcast(self, message: Message, timeout_s: float | None = None) -> None:
        """Publish ``message`` to every node listening on gossip, retrying for ``timeout_s``
        (default ``publish_timeout_s``)."""
        self._publish(self._codec.encode(message), GOSSIP, "", timeout_s)
        self.sent[WIRE_NAMES[type(message)]] += 1

    def publish_raw(self, body: bytes, node_id: str) -> None:
        """Publish bytes as they are (tests use it to send malformed messages)."""
        self._publish(body, DIRECT, node_id)

    def _publish(
        self, body: bytes, exchange: Exchange, routing_key: str, timeout_s: float | None = None
    ) -> None:
        """Publish, retrying through reconnects and failovers for ``timeout_s`` (default
        ``publish_timeout_s``; ``unknown_peer_grace_s`` when no peer consumes the routing
        key yet)."""
        deadline_s = self._options.publish_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        delay = 0.05
        with self._publish_lock:
            while True:
                try:
                    remaining = deadline_s - (time.monotonic() - started)
                    if not self._connected.wait(max(remaining, 0.0)):
                        raise TransportError(f"not connected to {scheme_of(self.current_url)}")
                    producer = self._ensure_producer()
                    target_exchange: Exchange | str = exchange
                    target_key = routing_key
                    if exchange is DIRECT:
                        for queue in self._declare_target(routing_key):
                            queue(producer.channel).declare()
                            self._declared.add(routing_key)
                        # Straight to the node's queue through the default exchange: on
                        # Redis one LPUSH, without looking the direct exchange's bindings up.
                        target_exchange, target_key = "", node_queue_name(routing_key)
                    producer.publish(
                        body,
                        exchange=target_exchange,
                        routing_key=target_key,
                        content_type=CONTENT_TYPE,
                        content_encoding="binary",
                        expiration=self._options.message_ttl_s,
                    )
                    return
                except Exception as exc:
                    self._drop_publisher()
                    waited = time.monotonic() - started
                    limit = deadline_s
                    if isinstance(exc, UnknownPeerError):
                        limit = self._options.unknown_peer_grace_s
                    if waited >= limit or self._stopping.is_set():
                        raise TransportError(
                            f"publish to {exchange.name!r} ({routing_key or 'all'}) "
                            f"failed after {waited:.1f}s: {exc}"
                        ) from exc
                    log.debug("event=publish_retry error=%r", exc)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, 1.0)

    def _ensure_producer(self) -> Producer:
        url = self.current_url
        stale = self._publisher_url != url or self._publisher_epoch != self._epoch
        if self._producer is not None and stale:
            self._drop_publisher()
        if self._producer is None:
            connection = self._connection(url)
            try:
                connection.ensure_connection(max_retries=1)
                producer = Producer(connection.default_channel)
                DIRECT(producer.channel).declare()
                GOSSIP(producer.channel).declare()
            except BaseException:
                connection.release()
                raise
            self._publisher, self._producer, self._publisher_url = connection, producer, url
            self._publisher_epoch = self._epoch
        return self._producer

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.release()
            except Exception:
                log.debug("event=publisher_release_failed", exc_info=True)
        self._publisher = self._producer = None
        self._declared.clear()

    # -- consuming -----------------------------------------------------------------------

    def _consume_forever(self) -> None:
        backoff = self._options.reconnect_backoff_s
        failing_since: float | None = None
        while not self._stopping.is_set():
            try:
                self._consume_once()
                backoff = self._options.reconnect_backoff_s
                failing_since = None
            except ValidationError as exc:
                # A configuration problem: retrying cannot help, say it once and stop.
                log.error("event=bus_misconfigured node=%s error=%s", self.node_id, exc)
                self._fatal = exc
                self._ready.set()
                return
            except Exception as exc:
                self._connected.clear()
                if self._stopping.is_set():
                    break
                now = time.monotonic()
                failing_since = failing_since or now
                log.warning(
                    "event=bus_disconnected node=%s transport=%s error=%r retry_in_s=%.1f",
                    self.node_id,
                    scheme_of(self.current_url),
                    exc,
                    backoff,
                )
                patience = 0.0 if not self._ready.is_set() else self._options.failover_after_s
                if self._current + 1 < len(self.urls) and now - failing_since >= patience:
                    self._fail_over()
                    failing_since, backoff = None, self._options.reconnect_backoff_s
                    continue
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self._options.reconnect_backoff_max_s)

    def _fail_over(self) -> None:
        before = scheme_of(self.current_url)
        self._current += 1
        log.warning(
            "event=bus_failover node=%s from=%s to=%s",
            self.node_id,
            before,
            scheme_of(self.current_url),
        )

    def _consume_once(self) -> None:
        with self._connection(self.current_url, self._options.amqp_heartbeat_s) as connection:
            connection.ensure_connection(max_retries=1)
            queues = [node_queue(self.node_id)]
            queues.append(gossip_queue(self.node_id))
            channel = connection.channel()
            # On Redis an ack costs two MULTI/EXEC transactions per message (kombu's ack
            # emulation). It buys nothing here: handlers hand a message to a worker queue and
            # return, so it was acknowledged on arrival in effect; what a lost message costs
            # is covered by the protocol's own timeouts and heartbeat holdings.
            no_ack = scheme_of(self.current_url) in REDIS_SCHEMES
            self._acks = not no_ack
            consumer = Consumer(channel, queues=queues, on_message=self._on_message, no_ack=no_ack)
            consumer.consume()
            with suppress(TimeoutError):
                # Redis subscribes to fanout on the first poll: do it before saying "ready".
                connection.drain_events(timeout=0.01)
            transport = connection.transport
            changed = transport.driver_type != self.active_transport
            self.active_transport = transport.driver_type
            hub = getattr(transport, "hub", None)
            self.peer_address = hub.address if hub is not None else ""
            if hub is not None and not hub.wait_settled(self._options.peer_settle_s):
                log.info("event=peer_not_settled node=%s peers=%s", self.node_id, hub.peers)
            log.info(
                "event=bus_connected node=%s transport=%s peer_address=%s",
                self.node_id,
                self.active_transport,
                self.peer_address or "-",
            )
            self._epoch += 1
            self._connected.set()
            self._ready.set()
            if changed and self.on_connected is not None:
                self.on_connected()
            try:
                while not self._stopping.is_set():
                    with suppress(TimeoutError):
                        connection.drain_events(timeout=self._options.poll_timeout_s)
                    connection.heartbeat_check()
            finally:
                try:
                    consumer.cancel()
                except Exception:
                    log.debug("event=consumer_cancel_failed", exc_info=True)

    def _drop(self, message: Any, reason: str) -> None:
        self.dropped += 1
        log.warning("event=message_dropped node=%s reason=%r", self.node_id, reason)
        self._ack(message)

    def _ack(self, message: Any) -> None:
        # kombu's Redis channel still runs its ack emulation (MULTI ZREM HDEL EXEC) for a
        # message a no_ack consumer got: ack only what needs it.
        if self._acks:
            message.ack()

    def _on_message(self, message: Any) -> None:
        try:
            skipped = self._codec.skipped
            envelopes = self._codec.decode_all(message.body)
            self.dropped += self._codec.skipped - skipped
        except RefusedMessageError as exc:
            # Counted by sender in the codec's verifier; logged once per sender.
            self.dropped += 1
            level = logging.DEBUG if exc.repeat else logging.WARNING
            log.log(level, "event=message_refused node=%s reason=%r", self.node_id, str(exc))
            self._ack(message)
            return
        except MessageError as exc:
            self._drop(message, str(exc))
            return
        except Exception as exc:
            # A decoder bug must cost one message, never the node's consumer.
            log.exception("event=decode_failed node=%s", self.node_id)
            self._drop(message, f"undecodable: {type(exc).__name__}")
            return
        try:
            for envelope in envelopes:
                self._handle(envelope)
        finally:
            self._ack(message)

    def _handle(self, envelope: Envelope) -> None:
        self.received[envelope.type] += 1
        try:
            self._handler(envelope)
        except Exception:
            log.exception(
                "event=handler_failed node=%s type=%s sender=%s",
                self.node_id,
                envelope.type,
                envelope.sender,
            )
