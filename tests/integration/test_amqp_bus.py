"""The bus over a real RabbitMQ: what the broker itself holds (durable node queues with the
message TTL, auto-deleted gossip queues), TTL expiry, and both URL schemes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu.connection import Connection

from protocol.envelope import Codec, Envelope
from protocol.errors import TransportError
from protocol.messages import Heartbeat
from protocol.transport import Bus, BusOptions
from tests.support.rabbitmq import RabbitMQServer
from tests.support.services import free_port
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class Buses:
    def __init__(self) -> None:
        self.open: list[Bus] = []

    def start(
        self,
        url: str,
        node_id: str | None = None,
        ttl_s: float | None = 3600.0,
        options: BusOptions | None = None,
    ) -> tuple[Bus, list[Envelope]]:
        node_id = node_id or f"n-{uuid.uuid4()}"
        received: list[Envelope] = []
        options = options or BusOptions(message_ttl_s=ttl_s)
        bus = Bus(url, node_id, received.append, Codec(node_id), options)
        self.open.append(bus)
        bus.start(timeout_s=30)
        return bus, received

    def close(self, bus: Bus) -> None:
        self.open.remove(bus)
        bus.close()


@pytest.fixture
def buses() -> Iterator[Buses]:
    opened = Buses()
    try:
        yield opened
    finally:
        for bus in opened.open:
            bus.close()


def queues(server: RabbitMQServer) -> dict[str, dict[str, Any]]:
    listing = server.ctl(
        "list_queues", "name", "durable", "auto_delete", "arguments", "--formatter", "json"
    )
    return {row["name"]: row for row in json.loads(listing)}


def ready_messages(server: RabbitMQServer, queue: str) -> int:
    with Connection(server.url) as connection:
        _, count, _ = connection.default_channel.queue_declare(queue=queue, passive=True)
    return int(count)


def test_node_queue_is_durable_and_gossip_queue_goes_with_its_node(
    rabbitmq: RabbitMQServer, buses: Buses
) -> None:
    bus, _ = buses.start(rabbitmq.url, ttl_s=120)
    listed = queues(rabbitmq)
    node = listed[f"bprotocol.{bus.node_id}"]
    assert (node["durable"], node["auto_delete"]) == (True, False)
    # The TTL rides on messages, so nodes with different TTLs can share a queue name.
    assert node["arguments"] == []
    gossip = listed[f"bprotocol.gossip.{bus.node_id}"]
    assert (gossip["durable"], gossip["auto_delete"]) == (False, True)

    buses.close(bus)
    wait_until(
        lambda: f"bprotocol.gossip.{bus.node_id}" not in queues(rabbitmq),
        15,
        interval_s=0.3,
        message="the gossip queue to be deleted",
    )
    assert f"bprotocol.{bus.node_id}" in queues(rabbitmq)


def test_a_message_older_than_the_ttl_is_dropped_by_the_broker(
    rabbitmq: RabbitMQServer, buses: Buses
) -> None:
    sender, _ = buses.start(rabbitmq.url, ttl_s=0.5)
    stopped, _ = buses.start(rabbitmq.url, ttl_s=3600)
    node_id = stopped.node_id
    buses.close(stopped)
    sender.send(node_id, Heartbeat(node_id=sender.node_id, seq=1))
    wait_until(
        lambda: ready_messages(rabbitmq, f"bprotocol.{node_id}") == 0,
        15,
        interval_s=0.1,
        message="the message to expire",
    )
    _, received = buses.start(rabbitmq.url, node_id=node_id, ttl_s=0.5)
    sender.send(node_id, Heartbeat(node_id=sender.node_id, seq=2))
    wait_until(lambda: received, 10, message="the marker")
    assert [envelope.payload for envelope in received] == [Heartbeat(node_id=sender.node_id, seq=2)]


def test_amqp_and_pyamqp_urls_talk_to_each_other(rabbitmq: RabbitMQServer, buses: Buses) -> None:
    a, _ = buses.start(rabbitmq.url)
    b, received = buses.start(rabbitmq.url.replace("amqp://", "pyamqp://", 1))
    a.send(b.node_id, Heartbeat(node_id=a.node_id, seq=1))
    wait_until(lambda: received, 10, message="a message across schemes")
    assert (a.active_transport, b.active_transport) == ("amqp", "amqp")


def test_a_send_to_a_broker_that_stopped_answering_fails_instead_of_hanging(
    rabbitmq: RabbitMQServer, buses: Buses
) -> None:
    options = BusOptions(connect_timeout_s=1.0, publish_timeout_s=2.0)
    bus, received = buses.start(rabbitmq.url, options=options)
    bus.send(bus.node_id, Heartbeat(node_id=bus.node_id, seq=1))
    wait_until(lambda: received, 10, message="a message before the freeze")
    with rabbitmq.frozen():
        started = time.monotonic()
        with pytest.raises(TransportError, match="publish"):
            bus.send(bus.node_id, Heartbeat(node_id=bus.node_id, seq=2))
        assert time.monotonic() - started < 15
    later = Heartbeat(node_id=bus.node_id, seq=3)
    bus.send(bus.node_id, later)
    wait_until(lambda: any(e.payload == later for e in received), 15, message="a later send")


def test_start_fails_clearly_when_nothing_listens() -> None:
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    bus = Bus(url, "n-nobody", lambda envelope: None, Codec("n-nobody"), BusOptions())
    try:
        with pytest.raises(TransportError, match="could not reach the message bus"):
            bus.start(timeout_s=2)
    finally:
        bus.close()


def test_nodes_with_different_ttls_share_the_broker(rabbitmq: RabbitMQServer, buses: Buses) -> None:
    short, _ = buses.start(rabbitmq.url, ttl_s=5)
    long_lived, received = buses.start(rabbitmq.url, ttl_s=7200)
    short.send(long_lived.node_id, Heartbeat(node_id=short.node_id, seq=1))
    wait_until(lambda: received, 10, message="the message across TTLs")
