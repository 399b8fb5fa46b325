"""A node labels itself as Bacalhau's do (``Operating-System``, ``Architecture`` in Go's
names) and with its hostname, under what the operator gives; jobs can select on them."""

from __future__ import annotations

import platform
import socket
from pathlib import Path

import pytest

from cli.stack import NodeOptions, NodeProcess
from protocol.labels import runtime_labels
from protocol.selectors import matches, parse_selector


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", {"Operating-System": "linux", "Architecture": "amd64"}),
        ("Darwin", "arm64", {"Operating-System": "darwin", "Architecture": "arm64"}),
        ("Linux", "aarch64", {"Operating-System": "linux", "Architecture": "arm64"}),
        ("Windows", "AMD64", {"Operating-System": "windows", "Architecture": "amd64"}),
        ("Linux", "riscv64", {"Operating-System": "linux", "Architecture": "riscv64"}),
    ],
)
def test_os_and_architecture_take_gos_names(
    system: str, machine: str, expected: dict[str, str]
) -> None:
    labels = runtime_labels(system, machine, "build-7")
    assert labels == {**expected, "hostname": "build-7"}


def test_a_hostname_the_label_rules_refuse_is_cut_or_left_out() -> None:
    long_fqdn = "worker-3." + "d" * 70 + ".example.com"
    assert runtime_labels("Linux", "x86_64", long_fqdn)["hostname"] == "worker-3"
    assert "hostname" not in runtime_labels("Linux", "x86_64", "bad host")
    assert "hostname" not in runtime_labels("Linux", "x86_64", "")


def test_a_node_carries_them_under_the_operators_labels(tmp_path: Path) -> None:
    options = NodeOptions(
        name="c1",
        data_dir=tmp_path,
        requester=False,
        labels={"zone": "eu", "Architecture": "custom"},
        cluster_token="bct-a-token-for-this-test-only",
    )
    node = NodeProcess(options)
    labels = node.info().labels
    assert labels["zone"] == "eu"
    assert labels["Architecture"] == "custom"  # the operator's word wins
    assert labels["Operating-System"] == platform.system().lower()
    assert labels.get("hostname") in (socket.gethostname(), None)
    (requirement,) = parse_selector(f"Operating-System={platform.system().lower()}")
    assert matches(labels, requirement)
