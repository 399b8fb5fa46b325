"""A coalescing sender: messages queue up while a publish is under way and leave together.

A node's replies come from many threads (bid workers, runs finishing). Sending each on its own
costs a broker round trip apiece; :class:`Outbox` hands them to one sender thread, which takes
everything queued at that moment and publishes it per destination as one batch
(:meth:`Bus.send_many`). When traffic is light a message leaves at once, alone; under load
the batches grow by themselves, with no timer and no added latency. Order is kept per
destination. A publish that fails is logged and dropped: the protocol's timeouts recover.

A message may also be *held* for a moment under a key (:meth:`Outbox.hold`): it leaves when
the delay has passed, unless a later message made it redundant first (:meth:`Outbox.drop`),
or at once when the sender says so (:meth:`Outbox.release`). A compute node holds the
ExecutionStarted of a run that started on a direct ask: a short run's RunResult says it
started, so one message does the work of two.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
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
        # held messages by key, and when each is due (a heap; dropped keys are skipped)
        self._held: dict[str, tuple[float, str, Message]] = {}
        self._due: list[tuple[float, str]] = []
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

    def hold(self, node_id: str, message: Message, key: str, delay_s: float) -> None:
        """Send ``message`` once ``delay_s`` has passed, unless :meth:`drop` (or
        :meth:`release`) of ``key`` comes first. A key names one held message at a time."""
        due = time.monotonic() + delay_s
        with self._cond:
            if self._stopping:
                self.failed += 1
                return
            self._held[key] = (due, node_id, message)
            heapq.heappush(self._due, (due, key))
            if self._due[0][1] == key:  # due before any other: the sender must wait less
                self._cond.notify_all()

    def drop(self, key: str) -> bool:
        """Forget the message held under ``key``; False if there was none (it left already)."""
        with self._cond:
            return self._held.pop(key, None) is not None

    def release(self, key: str) -> None:
        """Send the message held under ``key`` now, ahead of anything sent after this call."""
        with self._cond:
            held = self._held.pop(key, None)
            if held is not None:
                self._queue.append((held[1], held[2]))
                self._cond.notify_all()

    def _release_due(self, now: float) -> float | None:
        """Queue the held messages that are due; seconds until the next one (None: none).
        Called with the condition held."""
        while self._due:
            due, key = self._due[0]
            held = self._held.get(key)
            if held is None or held[0] != due:  # dropped, released or held again since
                heapq.heappop(self._due)
                continue
            if due > now:
                return due - now
            heapq.heappop(self._due)
            del self._held[key]
            self._queue.append((held[1], held[2]))
        return None

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every message queued so far was published (or failed)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and not self._in_flight, timeout=timeout_s
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued and held, then stop the sender thread."""
        with self._cond:
            for key in list(self._held):
                self.release(key)
        self.flush(timeout_s)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    wait_s = self._release_due(time.monotonic())
                    if self._queue or self._stopping:
                        break
                    self._cond.wait(wait_s)
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
