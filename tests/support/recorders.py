"""Test doubles for unit tests: an outbox/bus that records what is sent, and a clock to turn."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from protocol.messages import Message


class Recorder:
    """Records every message sent to a node or broadcast, with its destination ("*" for a
    broadcast); safe to use from the threads of the code under test."""

    def __init__(self) -> None:
        self.addressed: list[tuple[str, Message]] = []
        self._lock = threading.Lock()

    def send(self, node_id: str, message: Message) -> None:
        with self._lock:
            self.addressed.append((node_id, message))

    def send_all(self, messages: Sequence[tuple[str, Message]]) -> None:
        with self._lock:
            self.addressed.extend(messages)

    def broadcast(self, message: Message, timeout_s: float | None = None) -> None:
        self.send("*", message)

    def hold(self, node_id: str, message: Message, key: str, delay_s: float) -> None:
        """Recorded as sent at once, as though its delay had passed."""
        self.send(node_id, message)

    def drop(self, key: str) -> bool:
        return False  # nothing is ever held here

    def release(self, key: str) -> None:
        pass

    @property
    def sent(self) -> list[Message]:
        with self._lock:
            return [message for _, message in self.addressed]

    def of(self, kind: type[Message]) -> list[Message]:
        return [message for message in self.sent if isinstance(message, kind)]

    def to_whom(self, kind: type[Message]) -> list[tuple[str, Message]]:
        with self._lock:
            return [(node, m) for node, m in self.addressed if isinstance(m, kind)]


class FakeClock:
    """A monotonic clock in seconds that moves only when told to."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
