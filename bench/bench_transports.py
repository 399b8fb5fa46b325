"""Round-trip latency and one-way throughput of the bus over each transport.

Starts what it needs on loopback (redis-server, RabbitMQ when installed), skips what is
missing, prints figures, asserts nothing. ``python -m bench.bench_transports --messages 2000``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from protocol.envelope import Codec, Envelope
from protocol.messages import Heartbeat
from protocol.transport import Bus
from tests.support.brokers import Broker, peer_broker, shared_broker


class Inbox:
    def __init__(self) -> None:
        self.count = 0
        self._cond = threading.Condition()

    def __call__(self, envelope: Envelope) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.count >= count, timeout_s):
                raise TimeoutError(f"{self.count} of {count} messages arrived")


@contextmanager
def pair(broker: Broker) -> Iterator[tuple[Bus, Bus, Inbox, Inbox]]:
    inboxes = Inbox(), Inbox()
    buses = [
        Bus(broker.url_for(index), f"n-bench-{index}", inboxes[index], Codec(f"n-bench-{index}"))
        for index in range(2)
    ]
    for bus in buses:
        bus.start()
    try:
        yield buses[0], buses[1], inboxes[0], inboxes[1]
    finally:
        for bus in buses:
            bus.close()


def measure(broker: Broker, messages: int) -> str:
    with pair(broker) as (a, b, inbox_a, inbox_b):
        a.send(b.node_id, Heartbeat(node_id=a.node_id, seq=0))  # warm both connections
        inbox_b.wait_for(1)
        rtts = []
        for seq in range(min(messages, 500)):
            started = time.perf_counter()
            a.send(b.node_id, Heartbeat(node_id=a.node_id, seq=seq))
            inbox_b.wait_for(seq + 2)
            b.send(a.node_id, Heartbeat(node_id=b.node_id, seq=seq))
            inbox_a.wait_for(seq + 1)
            rtts.append(time.perf_counter() - started)
        base = inbox_b.count
        started = time.perf_counter()
        for seq in range(messages):
            a.send(b.node_id, Heartbeat(node_id=a.node_id, seq=seq))
        inbox_b.wait_for(base + messages)
        elapsed = time.perf_counter() - started
    rtts.sort()
    p50 = statistics.median(rtts) * 1e3
    p99 = rtts[int(len(rtts) * 0.99) - 1] * 1e3
    return (
        f"{broker.name:<7} rtt p50 {p50:6.2f} ms  p99 {p99:6.2f} ms   "
        f"one-way {messages / elapsed:8.0f} msg/s"
    )


def brokers(stack: ExitStack, root: Path) -> Iterator[Callable[[], Broker]]:
    yield lambda: shared_broker("memory", "memory://")
    try:
        from tests.support.services import redis_server

        redis = stack.enter_context(redis_server(root / "redis"))
        yield lambda: shared_broker("redis", redis.url)
    except BaseException as exc:  # pytest.skip raises outside pytest too
        print(f"redis   skipped: {exc}")
    try:
        from tests.support.rabbitmq import rabbitmq_server

        rabbit = stack.enter_context(rabbitmq_server(root / "rabbitmq"))
        yield lambda: shared_broker("amqp", rabbit.url)
    except BaseException as exc:
        print(f"amqp    skipped: {exc}")
    yield peer_broker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bacalao-bench-") as scratch, ExitStack() as stack:
        for make in brokers(stack, Path(scratch)):
            print(measure(make(), args.messages), flush=True)


if __name__ == "__main__":
    main()
