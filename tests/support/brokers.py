"""One way to name "the transport under test": a URL for each node of a cluster.

Redis and AMQP nodes share one broker URL. ``peer://`` nodes each listen on their own port;
node 0 is the seed every other node bootstraps from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.services import free_port

TRANSPORTS = ("redis", "amqp", "peer")


@dataclass
class Broker:
    name: str
    shared_url: str = ""
    _ports: dict[int, int] = field(default_factory=dict)

    def url_for(self, index: int) -> str:
        """The ``--broker`` URL of the cluster's node number ``index``."""
        if self.name != "peer":
            return self.shared_url
        port = self._ports.setdefault(index, free_port())
        if index == 0:
            return f"peer://127.0.0.1:{port}"
        return f"peer://127.0.0.1:{port}?bootstrap={self.seed}"

    @property
    def seed(self) -> str:
        return f"127.0.0.1:{self._ports.setdefault(0, free_port())}"


def peer_broker() -> Broker:
    return Broker("peer")


def shared_broker(name: str, url: str) -> Broker:
    return Broker(name, shared_url=url)


BrokerFactory = Callable[[], Broker]
