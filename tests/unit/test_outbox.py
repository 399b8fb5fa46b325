"""The coalescing outbox: what queues up while a publish is under way leaves together, one
batch per destination, in order; a publish that fails is counted and logged, and the sender
thread goes on."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from protocol.errors import TransportError
from protocol.messages import BidAccepted, Message
from protocol.outbox import Outbox
from tests.support.wait import wait_until

DEADLINE_S = 10.0


def msg(n: int) -> Message:
    return BidAccepted(execution_id=f"e-{n}", job_id="j")


class RecordingSender:
    """Records each ``send_many`` as it starts; can hold publishes until released, and fail
    them for chosen destinations."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[Message]]] = []
        self.fail: dict[str, Exception] = {}
        self.released = threading.Event()
        self.released.set()
        self._cond = threading.Condition()

    def hold(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def send_many(self, node_id: str, messages: Sequence[Message]) -> None:
        with self._cond:
            self.calls.append((node_id, list(messages)))
            self._cond.notify_all()
        assert self.released.wait(DEADLINE_S), "publish held past the deadline"
        error = self.fail.get(node_id)
        if error is not None:
            raise error

    def wait_for_calls(self, count: int) -> list[tuple[str, list[Message]]]:
        with self._cond:
            done = self._cond.wait_for(lambda: len(self.calls) >= count, timeout=DEADLINE_S)
            assert done, f"expected {count} publishes, got {self.calls!r}"
            return list(self.calls)

    def handed(self, node_id: str) -> list[Message]:
        with self._cond:
            return [m for to, messages in self.calls if to == node_id for m in messages]


def sender_thread_running(name: str) -> bool:
    return any(thread.name == name for thread in threading.enumerate())


@pytest.fixture
def sender() -> Iterator[RecordingSender]:
    sender = RecordingSender()
    yield sender
    sender.release()  # never leave an outbox thread stuck in a held publish


@pytest.fixture
def outbox(sender: RecordingSender) -> Iterator[Outbox]:
    outbox = Outbox(sender, name="outbox-under-test")
    yield outbox
    outbox.close()


def test_with_nothing_under_way_a_message_leaves_at_once_alone(
    sender: RecordingSender, outbox: Outbox
) -> None:
    outbox.send("n1", msg(0))
    assert sender.wait_for_calls(1) == [("n1", [msg(0)])]
    assert outbox.flush(DEADLINE_S)
    assert outbox.sent == 1
    assert outbox.failed == 0


def test_messages_queued_during_a_publish_leave_together_per_destination_in_order(
    sender: RecordingSender, outbox: Outbox
) -> None:
    sender.hold()
    outbox.send("n1", msg(0))
    sender.wait_for_calls(1)  # the first publish is under way, held
    outbox.send("n1", msg(1))
    outbox.send("n2", msg(2))
    outbox.send("n1", msg(3))
    outbox.send_all([("n2", msg(4)), ("n1", msg(5))])
    outbox.send("n3", msg(6))
    sender.release()
    assert outbox.flush(DEADLINE_S)
    assert sender.calls == [
        ("n1", [msg(0)]),
        ("n1", [msg(1), msg(3), msg(5)]),
        ("n2", [msg(2), msg(4)]),
        ("n3", [msg(6)]),
    ]
    assert outbox.sent == 7


def test_send_all_queues_every_pair_and_an_empty_one_sends_nothing(
    sender: RecordingSender, outbox: Outbox
) -> None:
    outbox.send_all([])
    assert outbox.flush(DEADLINE_S)
    assert sender.calls == []
    sender.hold()
    outbox.send_all([("n1", msg(0)), ("n2", msg(1)), ("n1", msg(2))])
    sender.wait_for_calls(1)
    sender.release()
    assert outbox.flush(DEADLINE_S)
    # taken in one go: one publish per destination
    assert sender.calls == [("n1", [msg(0), msg(2)]), ("n2", [msg(1)])]


def test_flush_waits_for_the_publish_under_way(sender: RecordingSender, outbox: Outbox) -> None:
    sender.hold()
    outbox.send("n1", msg(0))
    sender.wait_for_calls(1)
    outbox.send("n1", msg(1))
    assert not outbox.flush(0.05)  # held: neither has left
    sender.release()
    assert outbox.flush(DEADLINE_S)
    assert sender.handed("n1") == [msg(0), msg(1)]


def test_close_sends_what_is_queued_then_stops_the_thread(sender: RecordingSender) -> None:
    outbox = Outbox(sender, name="outbox-closing")
    assert sender_thread_running("outbox-closing")
    sender.hold()
    outbox.send("n1", msg(0))
    sender.wait_for_calls(1)
    outbox.send("n1", msg(1))
    outbox.send("n2", msg(2))
    closer = threading.Thread(target=outbox.close, kwargs={"timeout_s": DEADLINE_S})
    closer.start()
    sender.release()
    closer.join(DEADLINE_S)
    assert not closer.is_alive()
    assert not sender_thread_running("outbox-closing")
    assert sender.handed("n1") == [msg(0), msg(1)]
    assert sender.handed("n2") == [msg(2)]
    assert outbox.sent == 3


def test_a_close_that_times_out_still_drains_the_queue_before_the_thread_ends(
    sender: RecordingSender,
) -> None:
    outbox = Outbox(sender, name="outbox-slow-close")
    sender.hold()
    outbox.send("n1", msg(0))
    sender.wait_for_calls(1)
    outbox.send("n1", msg(1))
    outbox.close(timeout_s=0.05)  # the publish is held: close gives up waiting
    assert sender_thread_running("outbox-slow-close")
    sender.release()
    wait_until(
        lambda: not sender_thread_running("outbox-slow-close"),
        timeout_s=DEADLINE_S,
        message="the sender thread to end",
    )
    assert sender.handed("n1") == [msg(0), msg(1)]


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (TransportError("broker gone"), "error='broker gone'"),
        (RuntimeError("a bug in the bus"), "Traceback"),
    ],
)
def test_a_failed_publish_is_counted_logged_and_dropped_and_the_thread_goes_on(
    sender: RecordingSender,
    outbox: Outbox,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    logged: str,
) -> None:
    sender.fail["n-bad"] = error
    sender.hold()
    outbox.send("n-good", msg(0))
    sender.wait_for_calls(1)
    outbox.send("n-bad", msg(1))
    outbox.send("n-bad", msg(2))
    outbox.send("n-good", msg(3))
    with caplog.at_level("WARNING", logger="bacalao.transport"):
        sender.release()
        assert outbox.flush(DEADLINE_S)
    assert outbox.failed == 2
    assert outbox.sent == 2  # the other destination of the same round still went
    assert sender.handed("n-good") == [msg(0), msg(3)]
    failures = [r for r in caplog.records if "event=send_failed" in r.getMessage()]
    assert len(failures) == 1
    assert "node=n-bad messages=2" in failures[0].getMessage()
    assert logged in caplog.text
    # nothing is retried, and the sender thread still works
    sender.fail.clear()
    outbox.send("n-bad", msg(4))
    assert outbox.flush(DEADLINE_S)
    assert sender.handed("n-bad") == [msg(1), msg(2), msg(4)]
    assert sender_thread_running("outbox-under-test")
    assert outbox.sent == 3
    assert outbox.failed == 2


def test_a_message_sent_after_close_is_counted_as_failed_not_left_queued() -> None:
    outbox = Outbox(RecordingSender())
    outbox.close()
    outbox.send("node-a", msg(1))
    assert outbox.failed == 1
    assert outbox.flush(timeout_s=0.1)


def test_a_held_message_leaves_once_its_delay_has_passed(
    sender: RecordingSender, outbox: Outbox
) -> None:
    outbox.hold("n1", msg(0), "e-0", 0.05)
    outbox.send("n1", msg(1))
    assert sender.wait_for_calls(1) == [("n1", [msg(1)])]  # the held one waits
    assert sender.wait_for_calls(2)[1] == ("n1", [msg(0)])
    assert not outbox.drop("e-0")  # it left: nothing to drop
    assert outbox.flush(DEADLINE_S)
    assert outbox.sent == 2


def test_a_dropped_message_never_leaves(sender: RecordingSender, outbox: Outbox) -> None:
    outbox.hold("n1", msg(0), "e-0", 0.05)
    assert outbox.drop("e-0")
    outbox.hold("n1", msg(2), "e-2", 0.05)  # due after it: by now the dropped one had left
    sender.wait_for_calls(1)
    assert sender.handed("n1") == [msg(2)]


def test_a_released_message_leaves_now_ahead_of_what_follows(
    sender: RecordingSender, outbox: Outbox
) -> None:
    outbox.hold("n1", msg(0), "e-0", 3600)
    sender.hold()
    outbox.send("n2", msg(9))
    sender.wait_for_calls(1)  # a publish is under way: what follows queues up
    outbox.release("e-0")
    outbox.send("n1", msg(1))
    sender.release()
    assert outbox.flush(DEADLINE_S)
    assert sender.handed("n1") == [msg(0), msg(1)]
    assert not outbox.drop("e-0")


def test_closing_sends_what_is_still_held(sender: RecordingSender) -> None:
    outbox = Outbox(sender, name="outbox-closing")
    outbox.hold("n1", msg(0), "e-0", 3600)
    outbox.close()
    assert sender.handed("n1") == [msg(0)]
    assert not sender_thread_running("outbox-closing")
