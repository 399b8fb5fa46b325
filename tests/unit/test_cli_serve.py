"""``bacalao devstack`` and ``serve`` flags reach the nodes they start (in-process nodes on
memory://, inspected where the command would wait for Ctrl-C)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from typer.testing import CliRunner

import cli.devstack
import cli.serve
import cli.stack
from cli.devstack import Devstack
from cli.main import create_app
from cli.stack import NodeProcess


def storage_sources(node: NodeProcess) -> list[str]:
    compute = node.info().compute_node_info
    assert compute is not None
    return compute.storage_sources


@pytest.mark.timeout(60)
def test_devstack_gives_its_compute_nodes_the_allow_listed_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[Devstack] = []
    paths: list[tuple[str, ...]] = []
    sources: list[list[str]] = []

    class RecordedDevstack(Devstack):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            started.append(self)

    def look_instead_of_waiting() -> None:
        (stack,) = started
        paths.extend(node.options.allowed_local_paths for node in stack.computes)
        sources.extend(storage_sources(node) for node in stack.computes)

    monkeypatch.setattr(cli.devstack, "Devstack", RecordedDevstack)
    monkeypatch.setattr(cli.serve, "_wait_for_signal", look_instead_of_waiting)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    data, logs = tmp_path / "data", tmp_path / "logs"
    args = ["devstack", "--compute-nodes", "2", "--api-port", "0", "--data-dir", str(tmp_path)]
    flags = ["--allow-listed-local-paths", f"{data}:rw", "--allow-listed-local-paths", str(logs)]

    result = CliRunner().invoke(create_app(), [*args, *flags])

    assert result.exit_code == 0, result.output
    assert paths == [(f"{data}:rw", str(logs))] * 2
    assert len(sources) == 2
    assert all("local" in offered for offered in sources), sources
    assert "devstack: 1 requester + 2 compute nodes" in result.stderr


def test_without_the_flag_no_local_paths_are_offered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[list[str]] = []

    class RecordedDevstack(Devstack):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            seen.extend(storage_sources(node) for node in self.computes)

    monkeypatch.setattr(cli.devstack, "Devstack", RecordedDevstack)
    monkeypatch.setattr(cli.serve, "_wait_for_signal", lambda: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    args = ["devstack", "--compute-nodes", "1", "--api-port", "0", "--data-dir", str(tmp_path)]

    result = CliRunner().invoke(create_app(), args)

    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    assert "local" not in seen[0]


def test_a_relative_path_is_refused_before_anything_starts(tmp_path: Path) -> None:
    args = ["devstack", "--data-dir", str(tmp_path), "--allow-listed-local-paths", "data/x"]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 1
    assert "allow-listed-local-paths: 'data/x' must be an absolute path" in result.stderr
    assert not (tmp_path / "devstack").exists()


def test_the_flag_is_in_the_help() -> None:
    result = CliRunner().invoke(create_app(), ["devstack", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--allow-listed-local-paths" in result.stdout


LISTEN_FLAGS = [
    "--local-publisher-listen",
    "0.0.0.0",
    "--local-publisher-address",
    "127.0.0.2",
]


def results_server_answers(node: NodeProcess) -> dict[str, tuple[int, bytes]]:
    """What the node's results server answers for one archive, at its advertised URL and on
    127.0.0.1: listening on 0.0.0.0 while advertising 127.0.0.2, both answer (a bind to
    either address alone would miss the other)."""
    assert node.local_publisher_url is not None
    (node.folder / "results" / "e-1.tar.gz").write_bytes(b"archive")
    port = urlparse(node.local_publisher_url).port
    answers = {}
    for base in [node.local_publisher_url, f"http://127.0.0.1:{port}"]:
        response = httpx.get(f"{base}/e-1.tar.gz", timeout=10)
        answers[base] = (response.status_code, response.content)
    return answers


@pytest.mark.timeout(60)
def test_serve_binds_the_listen_address_and_advertises_the_publisher_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[NodeProcess] = []
    answers: list[dict[str, tuple[int, bytes]]] = []

    class RecordedNode(NodeProcess):
        def start(self) -> None:
            super().start()
            started.append(self)

    monkeypatch.setattr(cli.stack, "NodeProcess", RecordedNode)
    monkeypatch.setattr(
        cli.serve, "_wait_for_signal", lambda: answers.extend(map(results_server_answers, started))
    )
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    args = ["serve", "--node-type", "compute", "--data-dir", str(tmp_path)]

    result = CliRunner().invoke(create_app(), [*args, "--local-publisher-port", "0", *LISTEN_FLAGS])

    assert result.exit_code == 0, result.output
    (node,) = started
    assert node.local_publisher_url is not None
    port = urlparse(node.local_publisher_url).port
    assert answers == [
        {
            f"http://127.0.0.2:{port}": (200, b"archive"),
            f"http://127.0.0.1:{port}": (200, b"archive"),
        }
    ]


@pytest.mark.timeout(60)
def test_devstack_compute_nodes_take_the_listen_and_advertised_addresses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answers: list[dict[str, tuple[int, bytes]]] = []

    class RecordedDevstack(Devstack):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            answers.extend(map(results_server_answers, self.computes))

    monkeypatch.setattr(cli.devstack, "Devstack", RecordedDevstack)
    monkeypatch.setattr(cli.serve, "_wait_for_signal", lambda: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    args = ["devstack", "--compute-nodes", "1", "--api-port", "0", "--data-dir", str(tmp_path)]

    result = CliRunner().invoke(create_app(), [*args, *LISTEN_FLAGS])

    assert result.exit_code == 0, result.output
    (answer,) = answers
    assert [base.rsplit(":", 1)[0] for base in answer] == ["http://127.0.0.2", "http://127.0.0.1"]
    assert set(answer.values()) == {(200, b"archive")}


@pytest.mark.timeout(60)
def test_devstack_over_ask_reaches_the_requesters_scheduler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[int] = []

    class RecordedDevstack(Devstack):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            orchestrator = self.requester.orchestrator
            assert orchestrator is not None
            seen.append(orchestrator._config.scheduler.over_ask)

    monkeypatch.setattr(cli.devstack, "Devstack", RecordedDevstack)
    monkeypatch.setattr(cli.serve, "_wait_for_signal", lambda: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    args = ["devstack", "--compute-nodes", "1", "--api-port", "0", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(create_app(), [*args, "--over-ask", "1"])
    assert result.exit_code == 0, result.output
    assert seen == [1]
    refused = CliRunner().invoke(create_app(), [*args, "--over-ask", "0"])
    assert refused.exit_code == 2
    assert "--over-ask" in refused.stderr
