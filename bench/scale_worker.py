"""One process hosting many simulated compute nodes over one kombu connection.

``python -m bench.scale_worker --broker redis://127.0.0.1:P/0 --nodes 500 ...`` (started by
``bench.scale``). Every node has its own queue ``bprotocol.<node_id>`` on the direct exchange.
With ``--hear-gossip`` the process also has one gossip queue, to hear requesters (and every
other node, which is costly at 1,000 nodes); by default it is told the requester's boot with
``--known-requester`` instead, and the nodes' periodic NodeInfo covers a restart. Nodes
announce NodeInfo on start and on change (at most every ``min_gap`` seconds), and on the
heartbeat interval send Heartbeat, every ``info_every``-th beat a full NodeInfo, as
``protocol.gossip.Announcer`` does. Phases are spread over the interval, as independent
nodes would be.

One thread does everything (consume, answer, gossip), so the one connection needs no lock.
Replies go straight to the requester's queue (kombu's anonymous exchange: one LPUSH) unless
``--via-exchange`` routes them through the ``bprotocol`` exchange as a real node's bus does;
``--batch`` packs the replies of one message into one envelope where the codec can.
Touches ``--ready-file`` once every node has announced itself; on SIGTERM writes what it saw
to ``--stats-file`` as JSON and exits.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import signal
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange
from kombu.messaging import Consumer, Producer

from bench.scale_nodes import FakeNode, Reply, Tally, encode_replies, open_envelopes
from protocol.admission import ClusterToken
from protocol.envelope import CONTENT_TYPE, Codec
from protocol.errors import MessageError
from protocol.identity import NodeIdentity
from protocol.messages import AskForBid, Heartbeat, Message, NodeInfoMessage
from protocol.node import NodeInfo, NodeType
from protocol.resources import Resources
from protocol.signing import Signer
from protocol.transport import (
    DIRECT,
    GOSSIP,
    BusOptions,
    gossip_queue,
    node_queue,
    transport_options,
)
from protocol.units import parse_bytes, parse_cpu

EXPIRE_EVERY_S = 1.0
MAX_WAIT_S = 0.1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between beats")
    parser.add_argument("--info-every", type=int, default=3, help="every Nth beat is NodeInfo")
    parser.add_argument("--min-gap", type=float, default=0.1, help="seconds between changes")
    parser.add_argument("--cpu", default="1.6", help="CPU each node offers (1.6 = 16 noop slots)")
    parser.add_argument("--memory", default="4Gi", help="memory each node offers")
    parser.add_argument("--known-requester", default="", help="ID:BOOT of a requester up now")
    parser.add_argument("--via-exchange", action="store_true")
    parser.add_argument("--batch", action="store_true", help="replies to one requester batched")
    parser.add_argument(
        "--hear-gossip", action="store_true", help="subscribe to gossip, to hear requesters"
    )
    parser.add_argument("--cluster-token", required=True, help="the requester's, to sign with")
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--stats-file", type=Path, required=True)
    return parser.parse_args(argv)


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        capacity = Resources(cpu=parse_cpu(args.cpu), memory=parse_bytes(args.memory))
        # Each simulated node signs as a real one does: its own key, the cluster's token.
        token = ClusterToken(args.cluster_token)
        identities = [NodeIdentity.generate() for _ in range(args.nodes)]
        self.nodes = {
            i.node_id: FakeNode(node_id=i.node_id, capacity=capacity, labels={"bench": "scale"})
            for i in identities
        }
        self.codecs = {
            i.node_id: Codec(i.node_id, signer=Signer(i, token.credential(i.public_key)))
            for i in identities
        }
        self.reader = Codec("")
        self.tally = Tally()
        self.due: list[tuple[float, str]] = []  # heap of (next beat, node ID)
        self.next_beat: dict[str, float] = {}
        self.beats: dict[str, int] = dict.fromkeys(self.nodes, 0)
        self.last_info: dict[str, float] = dict.fromkeys(self.nodes, 0.0)
        self.dirty: set[str] = set()
        self.boots: dict[str, str] = {}
        if args.known_requester:
            requester, _, boot = args.known_requester.partition(":")
            self.boots[requester] = boot
        self.stopping = False
        self.parent = os.getppid()
        self.producer: Producer | None = None
        options = transport_options(args.broker, BusOptions())
        self.connection = Connection(args.broker, transport_options=options, connect_timeout=5)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        with self.connection:
            self.connection.ensure_connection(max_retries=5)
            self.producer = Producer(self.connection.channel())
            DIRECT(self.producer.channel).declare()
            GOSSIP(self.producer.channel).declare()
            queues = [node_queue(node_id) for node_id in self.nodes]
            if self.args.hear_gossip:
                queues.append(gossip_queue(f"n-scale-{uuid.uuid4()}"))
            channel = self.connection.channel()
            consumer = Consumer(channel, queues=queues, on_message=self.on_message, no_ack=True)
            consumer.consume()
            with suppress(TimeoutError):
                self.connection.drain_events(timeout=0.01)  # subscribes to gossip
            self.start_gossip(time.monotonic())
            self.args.ready_file.touch()
            self.loop()

    def loop(self) -> None:
        next_expiry = time.monotonic() + EXPIRE_EVERY_S
        while not self.stopping and os.getppid() == self.parent:
            now = time.monotonic()
            wait = MAX_WAIT_S if not self.due else self.due[0][0] - now
            with suppress(TimeoutError):
                self.connection.drain_events(timeout=min(max(wait, 0.001), MAX_WAIT_S))
            now = time.monotonic()
            if now >= next_expiry:
                next_expiry = now + EXPIRE_EVERY_S
                for node in self.nodes.values():
                    node.expire(now, self.tally)
                    if node.changed:
                        self.dirty.add(node.node_id)
            self.announce_changes(now)
            self.beat(now)

    # -- gossip --------------------------------------------------------------------------

    def start_gossip(self, now: float) -> None:
        interval = self.args.heartbeat
        count = len(self.nodes)
        for index, node_id in enumerate(self.nodes):
            self.announce(node_id, now)
            self.schedule(node_id, now + interval * (index + 1) / count)

    def schedule(self, node_id: str, at: float) -> None:
        self.next_beat[node_id] = at
        heapq.heappush(self.due, (at, node_id))

    def announce(self, node_id: str, now: float) -> None:
        node = self.nodes[node_id]
        node.changed = False
        self.last_info[node_id] = now
        self.broadcast(node, NodeInfoMessage(info=node.info("redis"), executions=node.holding(now)))

    def announce_changes(self, now: float) -> None:
        """Nodes whose capacity changed announce it, at most every ``min_gap`` each; the
        next beat then comes a full interval later, as in ``Announcer``."""
        if not self.dirty:
            return
        ready = [n for n in self.dirty if now - self.last_info[n] >= self.args.min_gap]
        for node_id in ready:
            self.dirty.discard(node_id)
            self.announce(node_id, now)
            self.beats[node_id] = 0
            self.schedule(node_id, now + self.args.heartbeat)

    def beat(self, now: float) -> None:
        while self.due and self.due[0][0] <= now:
            at, node_id = heapq.heappop(self.due)
            if self.next_beat.get(node_id) != at:
                continue  # rescheduled by an announcement since
            self.schedule(node_id, at + self.args.heartbeat)
            self.beats[node_id] += 1
            if self.beats[node_id] % max(1, self.args.info_every) == 0:
                self.announce(node_id, now)
                continue
            node = self.nodes[node_id]
            node.seq += 1
            beat = Heartbeat(node_id=node_id, seq=node.seq, executions=node.holding(now))
            self.broadcast(node, beat)

    def heard(self, info: NodeInfo) -> None:
        """A requester that is new or restarted has an empty node table: every node tells
        it about itself (after ``min_gap``), as a real node does."""
        if info.node_type == NodeType.COMPUTE or self.boots.get(info.node_id) == info.boot_id:
            return
        self.boots[info.node_id] = info.boot_id
        self.dirty.update(self.nodes)

    # -- messages ------------------------------------------------------------------------

    def on_message(self, message: Any) -> None:
        self.tally.messages_in += 1
        delivery = message.delivery_info or {}
        if delivery.get("exchange") == GOSSIP.name:
            self.on_gossip(message.body)
            return
        try:
            envelopes = open_envelopes(self.reader, message.body)
        except MessageError:
            self.tally.dropped += 1
            return
        routed = str(delivery.get("routing_key", "")).removeprefix("bprotocol.")
        now = time.monotonic()
        replies: dict[str, list[Reply]] = {}
        for envelope in envelopes:
            payload = envelope.payload
            node = self.nodes.get(routed)
            if node is None and isinstance(payload, AskForBid):
                node = self.nodes.get(payload.execution.node_id)
            if node is None:
                self.tally.dropped += 1
                continue
            answer = node.handle(envelope.sender, payload, now, self.tally)
            replies.setdefault(node.node_id, []).extend(answer)
            if node.changed:
                self.dirty.add(node.node_id)
        for node_id, answers in replies.items():
            self.reply(self.nodes[node_id], answers)

    def on_gossip(self, body: bytes) -> None:
        """Gossip from compute nodes says nothing to a compute node: skip it unparsed by
        pydantic; a requester's NodeInfo (or a batch) is decoded in full."""
        try:
            raw = json.loads(body)
            kind = raw.get("Type")
            node_type = (raw.get("Payload") or {}).get("NodeInfo", {}).get("NodeType")
        except (ValueError, AttributeError):
            self.tally.dropped += 1
            return
        if kind in ("Heartbeat", "ShutdownNotice") or node_type == NodeType.COMPUTE.value:
            return
        try:
            envelopes = open_envelopes(self.reader, body)
        except MessageError:
            self.tally.dropped += 1
            return
        for envelope in envelopes:
            if isinstance(envelope.payload, NodeInfoMessage):
                self.heard(envelope.payload.info)

    def reply(self, node: FakeNode, replies: list[Reply]) -> None:
        """Send each requester its replies, in order (batched with ``--batch``)."""
        assert self.producer is not None
        by_requester: dict[str, list[Message]] = {}
        for requester, message in replies:
            by_requester.setdefault(requester, []).append(message)
        codec = self.codecs[node.node_id]
        for requester, messages in by_requester.items():
            exchange: Exchange | str = ""
            key = node_queue(requester).name
            if self.args.via_exchange:
                exchange, key = DIRECT, requester
            for body in encode_replies(codec, messages, self.args.batch):
                self.tally.messages_out += 1
                self.producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=key,
                    content_type=CONTENT_TYPE,
                    content_encoding="binary",
                )

    def broadcast(self, node: FakeNode, message: Message) -> None:
        assert self.producer is not None
        body = self.codecs[node.node_id].encode(message)
        self.tally.gossip_out += 1
        self.producer.publish(
            body,
            exchange=GOSSIP,
            routing_key="",
            content_type=CONTENT_TYPE,
            content_encoding="binary",
        )

    def stop(self, *_: object) -> None:
        self.stopping = True


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    worker = Worker(args)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    try:
        worker.run()
    finally:
        stats = {"nodes": len(worker.nodes), **worker.tally.as_dict()}
        args.stats_file.write_text(json.dumps(stats))


if __name__ == "__main__":
    main()
