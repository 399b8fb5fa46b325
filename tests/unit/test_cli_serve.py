"""``bacalao devstack`` and ``serve`` flags reach the nodes they start (in-process nodes on
memory://, inspected where the command would wait for Ctrl-C), and a node that cannot start
says why in one line naming the flag, leaving nothing running."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from typer.testing import CliRunner

import cli.devstack
import cli.serve
import cli.stack
from cli.client import APIClient
from cli.devstack import Devstack
from cli.main import create_app
from cli.stack import NodeProcess
from requester.limits import SubmissionLimits
from tests.support.services import free_port
from tests.support.wait import wait_until


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


TOKEN_FLAGS = ["--cluster-token", "bct-a-token-for-these-tests"]

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
        response = httpx.get(node.result_links.url(base, "e-1.tar.gz"), timeout=10)
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
    args = ["serve", "--node-type", "compute", "--data-dir", str(tmp_path), *TOKEN_FLAGS]

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


# -- start-up errors: one line naming the flag, nothing left running -----------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_devstack_on_a_port_in_use_is_one_line_naming_api_port(
    busy_port: int, tmp_path: Path
) -> None:
    args = ["devstack", "--compute-nodes", "1", "--api-port", str(busy_port)]
    result = CliRunner().invoke(create_app(), [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # not a RuntimeError traceback
    assert result.stderr.strip().splitlines() == [
        f"Error: --api-port: 127.0.0.1:{busy_port} is already in use (another node or program "
        "listens there); pick another --api-port"
    ]
    assert not (tmp_path / "devstack").exists()  # checked before any node started


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_an_api_port_out_of_range_is_a_usage_error(port: str, tmp_path: Path) -> None:
    for command in ("devstack", "serve"):
        args = [command, "--api-port", port, "--data-dir", str(tmp_path)]
        result = CliRunner().invoke(create_app(), args)
        assert result.exit_code == 2, (command, result.output)
        assert "--api-port" in result.stderr
        assert not isinstance(result.exception, RuntimeError)


def test_an_api_host_that_is_no_address_is_a_usage_error(tmp_path: Path) -> None:
    for command in ("serve", "devstack"):
        args = [command, "--api-host", "999.1.1.1", "--data-dir", str(tmp_path)]
        result = CliRunner().invoke(create_app(), args, env={"COLUMNS": "200"})
        assert result.exit_code == 2, (command, result.output)
        assert "Invalid value for '--api-host': cannot resolve '999.1.1.1'" in result.stderr
        assert isinstance(result.exception, SystemExit)


def test_an_api_host_of_another_machine_names_api_host(tmp_path: Path) -> None:
    args = ["serve", "--api-host", "192.0.2.1", "--data-dir", str(tmp_path)]  # TEST-NET-1
    result = CliRunner().invoke(create_app(), [*args, "--local-publisher-port", "0"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: --api-host: 192.0.2.1 is not an address of this machine (0.0.0.0: every interface)"
    )


def test_a_compute_node_does_not_need_an_api_address(
    monkeypatch: pytest.MonkeyPatch, busy_port: int, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli.serve, "_wait_for_signal", lambda: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    args = ["serve", "--node-type", "compute", "--api-port", str(busy_port), *TOKEN_FLAGS]
    result = CliRunner().invoke(create_app(), [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output


@pytest.mark.timeout(60)
def test_a_node_whose_api_fails_after_the_check_stops_what_it_started(
    monkeypatch: pytest.MonkeyPatch, busy_port: int, tmp_path: Path
) -> None:
    """The port is taken between the check and the bind (a race the check cannot close):
    the bus, the compute role and its results server, already started, are stopped."""
    monkeypatch.setattr(cli.serve, "check_api_address", lambda host, port: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    threads_before = set(threading.enumerate())
    results_port = free_port()
    args = ["serve", "--api-port", str(busy_port), "--local-publisher-port", str(results_port)]

    result = CliRunner().invoke(create_app(), [*args, "--data-dir", str(tmp_path)])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert f"Error: --api-port: 127.0.0.1:{busy_port} is already in use" in result.stderr
    wait_until(lambda: not set(threading.enumerate()) - threads_before, 10, message="threads")
    with socket.socket() as again:  # the results server let go of its port
        again.bind(("127.0.0.1", results_port))


# -- flags that reach the nodes ---------------------------------------------------------


@pytest.mark.timeout(60)
def test_devstack_labels_reach_every_node_through_gossip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[dict[str, dict[str, str]]] = []

    class RecordedDevstack(Devstack):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            with APIClient("127.0.0.1", self.api_port) as client:
                seen.append({node.info.node_id: node.info.labels for node in client.nodes()})

    monkeypatch.setattr(cli.devstack, "Devstack", RecordedDevstack)
    monkeypatch.setattr(cli.serve, "_wait_for_signal", lambda: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    args = ["devstack", "--compute-nodes", "2", "--api-port", "0", "--data-dir", str(tmp_path)]
    labels = ["--labels", "zone=eu,tier=gold", "--labels", "team=ml"]

    result = CliRunner().invoke(create_app(), [*args, *labels])

    assert result.exit_code == 0, result.output
    (nodes,) = seen
    assert len(nodes) == 3
    given = {"zone": "eu", "tier": "gold", "team": "ml"}
    # with what each node says of itself (Operating-System, Architecture, hostname)
    assert all(given.items() <= found.items() for found in nodes.values())
    assert all("Operating-System" in found for found in nodes.values())


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("zone", "is not of the form key=value"),
        ("my zone=eu", "'my zone=eu': "),
        ("zone=eu west", "'zone=eu west': "),
    ],
)
def test_node_labels_follow_the_rules_constraints_match_by(
    tmp_path: Path, label: str, words: str
) -> None:
    args = ["devstack", "--data-dir", str(tmp_path), "--labels", label]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 1
    assert "labels: " in result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "devstack").exists()


@pytest.mark.timeout(60)
def test_serve_flags_reach_the_job_limits_and_the_api_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[NodeProcess] = []

    class RecordedNode(NodeProcess):
        def start(self) -> None:
            super().start()
            started.append(self)

    monkeypatch.setattr(cli.stack, "NodeProcess", RecordedNode)
    monkeypatch.setattr(cli.serve, "_wait_for_signal", lambda: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    monkeypatch.delenv("BACALAO_API_TOKEN", raising=False)
    args = ["serve", "--node-type", "requester,compute", "--data-dir", str(tmp_path)]
    args += ["--api-port", "0", "--local-publisher-port", "0"]
    limits = ["--max-execution-timeout", "60", "--max-count", "2", "--max-inline-bytes", "0"]
    limits += ["--max-inputs", "3", "--max-result-paths", "4"]
    tokens = ["--api-token", "tok-the-first-api-token", "--api-token", "tok-the-second-token"]

    result = CliRunner().invoke(create_app(), [*args, *limits, *tokens])

    assert result.exit_code == 0, result.output
    (node,) = started
    assert node.options.limits == SubmissionLimits(60, 2, 0, 3, 4)
    assert node.options.api_tokens == ("tok-the-first-api-token", "tok-the-second-token")
    assert node.compute is not None
    assert node.compute._config.max_execution_timeout_s == 60
