"""A node's link to the bprotocol, built on kombu: the URL alone chooses the backend.

Every node consumes its own queue ``bprotocol.<node_id>`` (direct exchange ``bprotocol``,
routing key = node ID) and an auto-delete queue bound to the fanout exchange
``bprotocol.gossip``. Consuming runs on one thread with its own connection; publishing uses
another connection behind a lock, because kombu connections are not thread-safe.

Several URLs separated by ``;`` are kombu alternates: kombu fails over to the next one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Consumer, Producer

from protocol.envelope import CONTENT_TYPE, Codec, Envelope
from protocol.errors import MessageError, TransportError
from protocol.messages import Message

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
    publish_retries: int = 3
    message_ttl_s: float | None = 3600.0
    memory_polling_interval_s: float = 0.005


def scheme_of(url: str) -> str:
    return url.split(";", 1)[0].split("://", 1)[0].lower()


def node_queue(node_id: str, ttl_s: float | None) -> Queue:
    return Queue(
        f"bprotocol.{node_id}",
        exchange=DIRECT,
        routing_key=node_id,
        durable=True,
        message_ttl=ttl_s,
    )


def gossip_queue(node_id: str) -> Queue:
    return Queue(f"bprotocol.gossip.{node_id}", exchange=GOSSIP, durable=False, auto_delete=True)


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
        self.node_id = node_id
        self._handler = handler
        self._codec = codec
        self._options = options or BusOptions()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._publish_lock = threading.Lock()
        self._publisher: Connection | None = None
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None
        self.active_transport = scheme_of(url)
        self.dropped = 0

    def _connection(self) -> Connection:
        options: dict[str, Any] = {"polling_interval": self._options.memory_polling_interval_s}
        if scheme_of(self.url) in ("redis", "rediss"):
            options = {"fanout_prefix": True, "fanout_patterns": True}
        return Connection(
            self.url,
            transport_options=options,
            connect_timeout=self._options.connect_timeout_s,
            failover_strategy="round-robin",
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect, declare this node's queues, and start consuming."""
        self._thread = threading.Thread(
            target=self._consume_forever, name=f"bus-{self.node_id[:10]}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TransportError(f"could not reach the message bus at {self.url} in {timeout_s}s")

    def close(self) -> None:
        self._stopping.set()
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
        self._publish(self._codec.encode(message), DIRECT, node_id)

    def broadcast(self, message: Message) -> None:
        """Publish ``message`` to every node listening on gossip."""
        self._publish(self._codec.encode(message), GOSSIP, "")

    def publish_raw(self, body: bytes, node_id: str) -> None:
        """Publish bytes as they are (tests use it to send malformed messages)."""
        self._publish(body, DIRECT, node_id)

    def _publish(self, body: bytes, exchange: Exchange, routing_key: str) -> None:
        with self._publish_lock:
            try:
                producer = self._ensure_producer()
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    content_type=CONTENT_TYPE,
                    content_encoding="binary",
                    retry=True,
                    retry_policy={
                        "max_retries": self._options.publish_retries,
                        "interval_start": 0.1,
                        "interval_step": 0.5,
                        "interval_max": 2.0,
                    },
                )
            except Exception as exc:
                self._drop_publisher()
                raise TransportError(f"publish to {exchange.name!r} failed: {exc}") from exc

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            connection = self._connection()
            connection.ensure_connection(max_retries=self._options.publish_retries)
            producer = Producer(connection.default_channel)
            DIRECT(producer.channel).declare()
            GOSSIP(producer.channel).declare()
            self._publisher, self._producer = connection, producer
        return self._producer

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.release()
            except Exception:
                log.debug("event=publisher_release_failed", exc_info=True)
        self._publisher = self._producer = None

    # -- consuming -----------------------------------------------------------------------

    def _consume_forever(self) -> None:
        backoff = self._options.reconnect_backoff_s
        while not self._stopping.is_set():
            try:
                self._consume_once()
                backoff = self._options.reconnect_backoff_s
            except Exception as exc:
                if self._stopping.is_set():
                    break
                log.warning(
                    "event=bus_disconnected node=%s url=%s error=%r retry_in_s=%.1f",
                    self.node_id,
                    self.url,
                    exc,
                    backoff,
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self._options.reconnect_backoff_max_s)

    def _consume_once(self) -> None:
        with self._connection() as connection:
            connection.ensure_connection(max_retries=1)
            self.active_transport = connection.transport.driver_type
            queues = [node_queue(self.node_id, self._options.message_ttl_s)]
            queues.append(gossip_queue(self.node_id))
            channel = connection.channel()
            consumer = Consumer(channel, queues=queues, on_message=self._on_message)
            consumer.consume()
            log.info(
                "event=bus_connected node=%s transport=%s",
                self.node_id,
                self.active_transport,
            )
            self._ready.set()
            try:
                while not self._stopping.is_set():
                    try:
                        connection.drain_events(timeout=self._options.poll_timeout_s)
                    except TimeoutError:
                        continue
            finally:
                try:
                    consumer.cancel()
                except Exception:
                    log.debug("event=consumer_cancel_failed", exc_info=True)

    def _on_message(self, message: Any) -> None:
        try:
            envelope = self._codec.decode(message.body)
        except MessageError as exc:
            self.dropped += 1
            log.warning("event=message_dropped node=%s reason=%r", self.node_id, str(exc))
            message.ack()
            return
        try:
            self._handler(envelope)
        except Exception:
            log.exception(
                "event=handler_failed node=%s type=%s sender=%s",
                self.node_id,
                envelope.type,
                envelope.sender,
            )
        finally:
            message.ack()
