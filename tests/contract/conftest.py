"""The transports every contract test runs over: one entry per backend in ``TRANSPORTS``;
the job stores, one per backend in ``STORES`` (tests/contract/stores.py).

A factory yields a :class:`Transport`: a URL for each node (``peer://`` nodes each listen on
their own), what the backend promises (a stopped node's queue keeps its messages; they even
survive a broker restart), and, when asked for a private server, a way to restart that server
under live buses. Shared servers are the session's; private ones live for one test module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import pytest

from protocol.envelope import Codec, Envelope
from protocol.messages import Heartbeat
from protocol.transport import Bus, BusOptions
from tests.contract.stores import STORES, StoreBackend
from tests.support.brokers import Broker, peer_broker, shared_broker
from tests.support.rabbitmq import RabbitMQServer, rabbitmq_server
from tests.support.services import RedisServer, redis_server


@dataclass
class Transport:
    broker: Broker
    durable: bool
    persistent: bool = False
    restart: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.broker.name

    def url_for(self, index: int) -> str:
        return self.broker.url_for(index)


TransportFactory = Callable[[pytest.FixtureRequest, bool], AbstractContextManager[Transport]]


@contextmanager
def memory_transport(request: pytest.FixtureRequest, private: bool) -> Iterator[Transport]:
    yield Transport(shared_broker("memory", "memory://"), durable=True)


@contextmanager
def redis_transport(request: pytest.FixtureRequest, private: bool) -> Iterator[Transport]:
    if not private:
        shared: RedisServer = request.getfixturevalue("redis")
        yield Transport(shared_broker("redis", shared.url), durable=True)
        return
    workdir = request.getfixturevalue("tmp_path_factory").mktemp("redis-restartable")
    with redis_server(workdir) as server:
        yield Transport(shared_broker("redis", server.url), durable=True, restart=server.restart)


@contextmanager
def amqp_transport(request: pytest.FixtureRequest, private: bool) -> Iterator[Transport]:
    if not private:
        shared: RabbitMQServer = request.getfixturevalue("rabbitmq")
        yield Transport(shared_broker("amqp", shared.url), durable=True, persistent=True)
        return
    workdir = request.getfixturevalue("tmp_path_factory").mktemp("rabbitmq-restartable")
    with rabbitmq_server(workdir) as server:
        broker = shared_broker("amqp", server.url)
        yield Transport(broker, durable=True, persistent=True, restart=server.restart)


@contextmanager
def peer_transport(request: pytest.FixtureRequest, private: bool) -> Iterator[Transport]:
    # Queues live on their consumer: nothing outlives a stopped node, and there is no
    # broker to restart.
    yield Transport(peer_broker(), durable=False)


TRANSPORTS: dict[str, TransportFactory] = {
    "memory": memory_transport,
    "redis": redis_transport,
    "amqp": amqp_transport,
    "peer": peer_transport,
}

BUS_OPTIONS = BusOptions(poll_timeout_s=0.2, reconnect_backoff_s=0.1, reconnect_backoff_max_s=1.0)


@dataclass
class Node:
    """A started bus and every envelope its handler was given, in arrival order."""

    bus: Bus
    index: int
    received: list[Envelope] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.bus.node_id

    def heartbeats_from(self, sender: Node) -> list[int]:
        return [
            envelope.payload.seq
            for envelope in list(self.received)
            if isinstance(envelope.payload, Heartbeat) and envelope.sender == sender.id
        ]


class Cluster:
    """Buses on one transport; whatever is still running is closed when the test ends."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._running: list[Node] = []

    def start(
        self,
        index: int,
        node_id: str | None = None,
        handler: Callable[[Envelope], None] | None = None,
    ) -> Node:
        node_id = node_id or f"n-{uuid.uuid4()}"
        received: list[Envelope] = []

        def record(envelope: Envelope) -> None:
            if handler is not None:
                handler(envelope)
            received.append(envelope)

        url = self.transport.url_for(index)
        bus = Bus(url, node_id, record, Codec(node_id), BUS_OPTIONS)
        node = Node(bus, index, received)
        self._running.append(node)
        bus.start(timeout_s=30)
        return node

    def stop(self, node: Node) -> None:
        self._running.remove(node)
        node.bus.close()

    def close(self) -> None:
        """Close every running bus at once (a Redis bus takes up to a second to let go)."""
        running, self._running = self._running, []
        with ThreadPoolExecutor(max_workers=len(running) or 1) as pool:
            list(pool.map(lambda node: node.bus.close(), running))


@pytest.fixture(params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    with TRANSPORTS[request.param](request, False) as chosen:
        yield chosen


@pytest.fixture(scope="module", params=list(TRANSPORTS))
def restartable_transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    with TRANSPORTS[request.param](request, True) as chosen:
        if chosen.restart is None:
            pytest.skip(f"{chosen.name}: no server to restart under a live bus")
        yield chosen


@pytest.fixture
def cluster(transport: Transport) -> Iterator[Cluster]:
    nodes = Cluster(transport)
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def restartable_cluster(restartable_transport: Transport) -> Iterator[Cluster]:
    nodes = Cluster(restartable_transport)
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture(params=list(STORES))
def store_backend(request: pytest.FixtureRequest) -> Iterator[StoreBackend]:
    with STORES[request.param](request) as backend:
        yield backend
