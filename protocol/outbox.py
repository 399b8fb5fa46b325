"""A coalescing sender: messages queue up while a publish is under way and leave together.

A node's replies come from many threads (bid workers, runs finishing). Sending each on its own
costs a broker round trip apiece; :class:`Outbox` hands them to one sender thread, which takes
everything queued at that moment and publishes it per destination as one batch
(:meth:`Bus.send_many`). When traffic is light a message leaves at once, alone; under load
the batches grow by themselves, with no timer and no added latency. Order is kept per
destination. A publish that fails is logged and dropped: the protocol's timeouts recover.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from protocol.errors import TransportError
from protocol.messages import Message

log = logging.getLogger("bacalao.transport")


class BatchSender(Protocol):
    def send_many(self, node_id: str, messages: Sequence[Message]) -> None: ...


class Outbox:
    """``send`` never blocks on the broker; ``flush`` waits until what was sent has left."""

    def __init__(self, bus: BatchSender, name: str = "outbox") -> None:
        self._bus = bus
        self._queue: deque[tuple[str, Message]] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self.sent = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def send(self, node_id: str, message: Message) -> None:
        self.send_all([(node_id, message)])

    def send_all(self, messages: Sequence[tuple[str, Message]]) -> None:
        if not messages:
            return
        with self._cond:
            if self._stopping:
                # Closed: the node is shutting down and nothing would ever send these.
                self.failed += len(messages)
                log.debug("event=outbox_closed dropped=%d", len(messages))
                return
            self._queue.extend(messages)
            self._cond.notify_all()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every message queued so far was published (or failed)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and not self._in_flight, timeout=timeout_s
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued, then stop the sender thread."""
        self.flush(timeout_s)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return
                taken = list(self._queue)
                self._queue.clear()
                self._in_flight = len(taken)
            try:
                self._publish(taken)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _publish(self, taken: list[tuple[str, Message]]) -> None:
        by_node: dict[str, list[Message]] = {}
        for node_id, message in taken:
            by_node.setdefault(node_id, []).append(message)
        for node_id, messages in by_node.items():
            try:
                self._bus.send_many(node_id, messages)
                self.sent += len(messages)
            except TransportError as exc:
                self.failed += len(messages)
                log.warning(
                    "event=send_failed node=%s messages=%d error=%r",
                    node_id,
                    len(messages),
                    str(exc),
                )
            except Exception:
                self.failed += len(messages)
                log.exception("event=send_failed node=%s messages=%d", node_id, len(messages))
