from __future__ import annotations

import pytest

from protocol.errors import NotFoundError
from protocol.ids import now_ns
from protocol.node import ComputeNodeInfo, NodeConnection, NodeInfo, NodeType
from protocol.resources import Resources
from requester.nodes import NodeTable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def info(node_id: str, boot_id: str = "b1") -> NodeInfo:
    return NodeInfo(node_id=node_id, boot_id=boot_id)


def test_nodes_missing_heartbeats_are_disconnected_and_come_back() -> None:
    clock = Clock()
    table = NodeTable(disconnect_after_s=15, clock=clock)
    assert table.on_info(info("n-a"))[:2] == (True, False)
    clock.now += 10
    assert table.on_heartbeat("n-a")
    clock.now += 14
    assert table.sweep() == []
    clock.now += 2
    assert table.sweep() == ["n-a"]
    assert table.connected() == []
    assert table.get("n-a").connection is NodeConnection.DISCONNECTED
    assert table.on_info(info("n-a"))[:2] == (True, False)
    assert [n.node_id for n in table.connected()] == ["n-a"]


def test_a_new_boot_id_says_the_node_restarted() -> None:
    table = NodeTable(disconnect_after_s=15, clock=Clock())
    table.on_info(info("n-a", "b1"))
    assert table.on_info(info("n-a", "b1"))[:2] == (False, False)
    assert table.on_info(info("n-a", "b2"))[:2] == (False, True)


def test_shutdown_notice_disconnects_and_unknown_heartbeats_are_ignored() -> None:
    table = NodeTable(disconnect_after_s=15, clock=Clock())
    assert not table.on_heartbeat("n-x")
    table.on_info(info("n-a"))
    table.on_shutdown("n-a")
    assert not table.is_connected("n-a")


def test_lookup_by_prefix() -> None:
    table = NodeTable(disconnect_after_s=15, clock=Clock())
    table.on_info(info("n-abc"))
    assert table.get("n-ab").info.node_id == "n-abc"
    with pytest.raises(NotFoundError):
        table.get("n-zz")


def test_silent_nodes_are_away_for_a_while_but_a_goodbye_is_final() -> None:
    clock = Clock()
    table = NodeTable(disconnect_after_s=15, clock=clock)
    table.on_info(info("n-silent"))
    table.on_info(info("n-bye"))
    table.on_shutdown("n-bye")
    assert table.away(60) == []
    clock.now += 16
    table.sweep()
    assert [n.node_id for n in table.away(60)] == ["n-silent"]
    clock.now += 60
    assert table.away(60) == []


def test_heartbeats_carry_what_a_node_holds() -> None:
    table = NodeTable(disconnect_after_s=15, clock=Clock())
    table.on_info(info("n-a"))
    table.on_info(info("n-r"))
    table.on_heartbeat("n-r")
    assert table.reports() == {}
    table.on_heartbeat("n-a", ["e-1", "e-2"])
    assert table.reports()["n-a"].executions == {"e-1", "e-2"}
    table.on_shutdown("n-a")
    assert table.reports() == {}


def test_a_node_info_keeps_the_holdings_report_unless_the_node_restarted() -> None:
    table = NodeTable(disconnect_after_s=15, clock=Clock())
    table.on_info(info("n-a", "b1"))
    table.on_heartbeat("n-a", ["e-1"])
    table.on_info(info("n-a", "b1"))
    assert table.reports()["n-a"].executions == {"e-1"}
    table.on_info(info("n-a", "b2"))
    assert table.reports() == {}


def test_a_node_info_is_capacity_news_a_heartbeat_is_not() -> None:
    table = NodeTable(disconnect_after_s=15, clock=Clock())
    before = now_ns()
    table.on_info(info("n-a"))
    first = table.announced()["n-a"]
    assert first >= before
    table.on_heartbeat("n-a", ["e-1"])
    assert table.announced() == {"n-a": first}
    table.on_info(info("n-a"))
    assert table.announced()["n-a"] >= first


def compute_info(node_id: str, cpu: float, seq: int, **labels: str) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        boot_id="b1",
        seq=seq,
        labels=labels,
        compute_node_info=ComputeNodeInfo(available_capacity=Resources(cpu=cpu)),
    )


def test_an_announcement_that_repeats_the_last_one_is_no_news() -> None:
    table = NodeTable(disconnect_after_s=15, clock=Clock())
    assert table.on_info(compute_info("n-a", 2.0, 1), ["e-1"]).news  # new to the table
    report = table.capacity_reports()["n-a"]
    repeated = table.on_info(compute_info("n-a", 2.0, 2), ["e-1"])
    assert repeated == (False, False, False)
    assert table.capacity_reports()["n-a"] is report  # kept: rooms made from it still hold
    assert table.on_info(compute_info("n-a", 1.0, 3), ["e-1"]).news  # capacity changed
    assert table.on_info(compute_info("n-a", 1.0, 4), ["e-1", "e-2"]).news  # counted more
    assert table.on_info(compute_info("n-a", 1.0, 5, zone="b"), ["e-1", "e-2"]).news  # labels
    assert not table.on_info(compute_info("n-a", 1.0, 6, zone="b"), ["e-1", "e-2"]).news


def test_any_compute_connected() -> None:
    clock = Clock()
    table = NodeTable(disconnect_after_s=15, clock=clock)
    table.on_info(NodeInfo(node_id="n-r", node_type=NodeType.REQUESTER))
    assert not table.any_compute_connected()
    table.on_info(compute_info("n-c", 1.0, 1))
    assert table.any_compute_connected()
    clock.now += 16
    table.sweep()
    assert not table.any_compute_connected()
