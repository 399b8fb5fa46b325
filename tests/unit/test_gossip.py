"""The announcer: NodeInfo at start and every few beats, heartbeats with holdings between,
a goodbye on close."""

from __future__ import annotations

from collections.abc import Callable

from protocol.gossip import Announcer
from protocol.messages import Heartbeat, NodeInfoMessage, ShutdownNotice
from protocol.node import NodeInfo, NodeType
from tests.support.recorders import Recorder
from tests.support.wait import wait_until


def test_heartbeats_say_what_the_node_holds_and_infos_come_every_third_beat() -> None:
    bus = Recorder()
    holding = ["e-1"]
    announcer = Announcer(
        bus, lambda: NodeInfo(node_id="n-a"), 0.01, info_every=3, holding=lambda: list(holding)
    )
    announcer.start()
    try:
        wait_until(lambda: len(bus.of(Heartbeat)) >= 4, 10, message="heartbeats")
    finally:
        announcer.close()
    beats = bus.of(Heartbeat)
    assert all(isinstance(b, Heartbeat) and b.executions == ["e-1"] for b in beats)
    infos = bus.of(NodeInfoMessage)
    assert len(infos) >= 2
    assert all(isinstance(i, NodeInfoMessage) and i.executions == ["e-1"] for i in infos)
    assert isinstance(bus.sent[0], NodeInfoMessage)
    assert isinstance(bus.sent[-1], ShutdownNotice)


def test_a_node_without_executions_to_report_sends_none() -> None:
    bus = Recorder()
    announcer = Announcer(bus, lambda: NodeInfo(node_id="n-r"), 0.01)
    announcer.start()
    try:
        wait_until(lambda: bus.of(Heartbeat), 10, message="a heartbeat")
    finally:
        announcer.close()
    first = bus.of(Heartbeat)[0]
    assert isinstance(first, Heartbeat)
    assert first.executions is None


def test_a_new_or_restarted_requester_is_told_about_this_node_at_once() -> None:
    bus = Recorder()
    announcer = Announcer(bus, lambda: NodeInfo(node_id="n-c"), heartbeat_interval_s=3600)
    requester = NodeInfo(node_id="n-r", node_type=NodeType.REQUESTER, boot_id="b1")

    def announces_after(other: NodeInfo) -> bool:
        announcer._changed.clear()
        announcer.heard(other)
        return announcer._changed.is_set()

    assert announces_after(requester)
    assert not announces_after(requester)  # the same boot: it knows this node already
    assert not announces_after(NodeInfo(node_id="n-x", node_type=NodeType.COMPUTE, boot_id="x"))
    assert not announces_after(NodeInfo(node_id="n-c", node_type=NodeType.HYBRID, boot_id="y"))
    assert announces_after(requester.model_copy(update={"boot_id": "b2"}))  # restarted
    assert announces_after(NodeInfo(node_id="n-h", node_type=NodeType.HYBRID, boot_id="z"))

    announcer.start()  # and the announcement itself goes out promptly
    try:
        wait_until(lambda: len(bus.of(NodeInfoMessage)) == 1, 10, message="the first NodeInfo")
        announcer.heard(requester.model_copy(update={"boot_id": "b3"}))
        wait_until(lambda: len(bus.of(NodeInfoMessage)) == 2, 10, message="a NodeInfo for b3")
    finally:
        announcer.close()


def announced(bus: Recorder, count: int) -> Callable[[], bool]:
    return lambda: len(bus.of(NodeInfoMessage)) >= count


def test_a_busy_node_reports_its_holdings_once_an_interval_not_with_every_change() -> None:
    bus = Recorder()
    asked: list[int] = []

    def holding() -> list[str]:
        asked.append(1)
        return ["e-1"]

    announcer = Announcer(
        bus, lambda: NodeInfo(node_id="n-b"), heartbeat_interval_s=3600, min_gap_s=0.0,
        holding=holding,
    )  # fmt: skip
    announcer.start()
    try:
        for count in range(2, 6):  # each change announced before the next is made
            announcer.changed()
            wait_until(announced(bus, count), 10, message="a NodeInfo")
    finally:
        announcer.close()
    infos = [i for i in bus.of(NodeInfoMessage) if isinstance(i, NodeInfoMessage)]
    assert infos[0].executions == ["e-1"]  # the first announcement reports
    assert [i.executions for i in infos[1:]] == [None] * (len(infos) - 1)
    assert len(asked) == 1


def test_changes_streaming_in_still_carry_a_report_every_interval() -> None:
    bus = Recorder()
    announcer = Announcer(
        bus, lambda: NodeInfo(node_id="n-s"), heartbeat_interval_s=0.05, min_gap_s=0.0,
        holding=lambda: ["e-2"],
    )  # fmt: skip
    announcer.start()

    def reported() -> bool:
        announcer.changed()  # never quiet for a whole interval: no heartbeat is ever due
        infos = [i for i in bus.of(NodeInfoMessage) if isinstance(i, NodeInfoMessage)]
        return sum(1 for i in infos if i.executions == ["e-2"]) >= 4

    try:
        wait_until(reported, 10, 0.005, message="holdings reported while changes stream in")
    finally:
        announcer.close()
