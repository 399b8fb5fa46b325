"""What the bus promises whatever carries it: one suite, run over every entry of TRANSPORTS.

Heartbeats double as numbered messages (``Seq``). A non-event ("C never sees it") is checked
with a marker sent after it on the same path: a node's queue is first-in first-out per
sender, so once the marker is in, anything sent before it would be too.
"""

from __future__ import annotations

import json
import secrets
import threading

import pytest

from protocol.envelope import Envelope
from protocol.errors import TransportError
from protocol.messages import ComputeError, Heartbeat
from tests.contract.conftest import Cluster, Node, Transport
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(90)


def heartbeat(sender: Node, seq: int) -> Heartbeat:
    return Heartbeat(node_id=sender.id, seq=seq)


def test_a_direct_message_reaches_its_addressee_only(cluster: Cluster) -> None:
    a, b, c = (cluster.start(index) for index in range(3))
    a.bus.send(b.id, heartbeat(a, 1))
    a.bus.send(c.id, heartbeat(a, 2))
    a.bus.send(a.id, heartbeat(a, 3))
    wait_until(lambda: a.received and b.received and c.received, 10, message="three markers")
    assert (b.heartbeats_from(a), c.heartbeats_from(a), a.heartbeats_from(a)) == ([1], [2], [3])
    envelope = b.received[0]
    assert (envelope.type, envelope.sender, envelope.payload) == (
        "Heartbeat",
        a.id,
        heartbeat(a, 1),
    )


def test_a_broadcast_reaches_every_node_including_the_sender_once(cluster: Cluster) -> None:
    nodes = [cluster.start(index) for index in range(3)]
    sender = nodes[1]
    sender.bus.broadcast(heartbeat(sender, 1))
    sender.bus.broadcast(heartbeat(sender, 2))
    wait_until(lambda: all(len(node.received) >= 2 for node in nodes), 10, message="two broadcasts")
    assert [node.heartbeats_from(sender) for node in nodes] == [[1, 2]] * 3


def test_a_node_gets_broadcasts_sent_as_soon_as_its_start_returns(
    transport: Transport, cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    a, b = cluster.start(0), cluster.start(1)
    a.bus.send(b.id, heartbeat(a, 0))
    wait_until(lambda: b.received, 10, message="a warm publisher")
    late = cluster.start(2)
    a.bus.broadcast(heartbeat(a, 1))
    a.bus.send(late.id, heartbeat(a, 2))
    wait_until(lambda: 2 in late.heartbeats_from(a), 10, message="the direct marker")
    wait_until(lambda: 1 in late.heartbeats_from(a), 2, message="the broadcast")
    assert sorted(late.heartbeats_from(a)) == [1, 2]


def test_messages_from_one_sender_arrive_in_the_order_sent(cluster: Cluster) -> None:
    a, b, c = (cluster.start(index) for index in range(3))
    count = 200
    senders = [
        threading.Thread(
            target=lambda n=n: [n.bus.send(b.id, heartbeat(n, i)) for i in range(count)]
        )
        for n in (a, c)
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=60)
    wait_until(lambda: len(b.received) >= 2 * count, 30, message=f"{2 * count} messages")
    assert b.heartbeats_from(a) == list(range(count))
    assert b.heartbeats_from(c) == list(range(count))


def test_a_four_mebibyte_message_arrives_whole(cluster: Cluster) -> None:
    a, b = cluster.start(0), cluster.start(1)
    big = ComputeError(execution_id="e-big", job_id="j-big", message=secrets.token_hex(2 << 20))
    a.bus.send(b.id, big)
    a.bus.send(b.id, heartbeat(a, 1))
    wait_until(lambda: len(b.received) >= 2, 30, message="the big message and a marker")
    assert [envelope.payload for envelope in b.received] == [big, heartbeat(a, 1)]


def test_malformed_messages_are_dropped_and_delivery_goes_on(cluster: Cluster) -> None:
    a, b = cluster.start(0), cluster.start(1)
    garbage = [
        b"\xff\x00 not json",
        json.dumps({"Version": 1, "Type": "NoSuchMessage", "Payload": {}}).encode(),
        json.dumps(
            {"Version": 1, "Type": "Heartbeat", "ID": "x", "Sender": a.id, "SentAt": 1}
        ).encode(),
        b"[" * 100_000,
        b'{"Version": 1, "Type": "Heartbeat", "Payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ]
    for body in garbage:
        a.bus.publish_raw(body, b.id)
    a.bus.send(b.id, heartbeat(a, 1))
    wait_until(lambda: b.received, 10, message="the valid message")
    assert b.heartbeats_from(a) == [1]
    assert len(b.received) == 1
    assert b.bus.dropped == len(garbage)


def test_a_failing_handler_does_not_stop_delivery(cluster: Cluster) -> None:
    def fail_on_first(envelope: Envelope) -> None:
        if isinstance(envelope.payload, Heartbeat) and envelope.payload.seq == 1:
            raise RuntimeError("handler failed")

    a, b = cluster.start(0), cluster.start(1, handler=fail_on_first)
    a.bus.send(b.id, heartbeat(a, 1))
    a.bus.send(b.id, heartbeat(a, 2))
    wait_until(lambda: b.received, 10, message="the message after the failing one")
    assert b.heartbeats_from(a) == [2]
    assert b.bus.dropped == 0


def test_a_stopped_node_gets_what_was_sent_to_it_when_it_starts_again(
    transport: Transport, cluster: Cluster
) -> None:
    if not transport.durable:
        pytest.skip(f"{transport.name}: a stopped node's queue does not keep messages")
    a, b = cluster.start(0), cluster.start(1)
    cluster.stop(b)
    for seq in range(3):
        a.bus.send(b.id, heartbeat(a, seq))
    again = cluster.start(1, node_id=b.id)
    wait_until(lambda: len(again.received) >= 3, 10, message="messages kept while stopped")
    assert again.heartbeats_from(a) == [0, 1, 2]


def test_queued_messages_survive_a_broker_restart(restartable_cluster: Cluster) -> None:
    transport = restartable_cluster.transport
    if not transport.persistent:
        pytest.skip(f"{transport.name}: the test server keeps no data across restarts")
    assert transport.restart is not None
    a, b = restartable_cluster.start(0), restartable_cluster.start(1)
    restartable_cluster.stop(b)
    for seq in range(3):
        a.bus.send(b.id, heartbeat(a, seq))
    transport.restart()
    again = restartable_cluster.start(1, node_id=b.id)
    wait_until(lambda: len(again.received) >= 3, 30, message="messages kept by the broker")
    assert again.heartbeats_from(a) == [0, 1, 2]


def test_buses_reconnect_after_the_broker_restarts(restartable_cluster: Cluster) -> None:
    transport = restartable_cluster.transport
    assert transport.restart is not None
    a, b = restartable_cluster.start(0), restartable_cluster.start(1)
    a.bus.send(b.id, heartbeat(a, 0))
    wait_until(lambda: b.received, 10, message="a message before the restart")

    transport.restart()
    probes = iter(range(1000, 2000))

    def both_reconnected() -> bool:
        for node in (a, b):
            try:
                a.bus.send(node.id, heartbeat(a, next(probes)))
            except TransportError:
                return False
        return bool(a.heartbeats_from(a)) and len(b.heartbeats_from(a)) > 1

    wait_until(both_reconnected, 60, interval_s=0.2, message="delivery after the restart")

    def after_probes(node: Node) -> list[int]:
        return [seq for seq in node.heartbeats_from(a) if seq not in range(1000, 2000)]

    for seq in range(20):
        a.bus.send(b.id, heartbeat(a, seq))
    a.bus.broadcast(heartbeat(a, 100))
    wait_until(
        lambda: len(after_probes(b)) >= 22 and 100 in after_probes(a), 30, message="the flow"
    )
    assert [seq for seq in after_probes(b) if seq != 100] == [0, *range(20)]
    assert 100 in after_probes(b)
    assert after_probes(a) == [100]
