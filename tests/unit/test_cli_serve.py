"""``bacalao devstack`` flags reach the nodes it starts (an in-process devstack on memory://,
inspected where the command would wait for Ctrl-C)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli.devstack
import cli.serve
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
