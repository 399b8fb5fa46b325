"""A default port another program holds is no reason to stop: a node whose default results
or API port is taken listens on a free one and says which, so several nodes started with the
README's command alone share one host. A port the user gave is that port or an error naming
its flag.

Every test occupies the "default" port itself (a listening loopback socket) and points the
node's default at it, so nothing depends on 1234 or 6001 being free on the machine.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from typer.testing import CliRunner

import cli.devstack
import cli.serve
import cli.stack
from cli.devstack import Devstack
from cli.listen import PortInUseError, bind_default
from cli.main import create_app
from cli.stack import NodeOptions, NodeProcess
from protocol.errors import ValidationError


def listening_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another program listens on."""
    yield from listening_port()


@pytest.fixture
def taken_defaults(monkeypatch: pytest.MonkeyPatch, taken: int) -> int:
    """The default API and results ports are ``taken``."""
    monkeypatch.setattr(cli.stack, "DEFAULT_API_PORT", taken)
    monkeypatch.setattr(cli.stack, "DEFAULT_LOCAL_PUBLISHER_PORT", taken)
    return taken


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve``/``devstack`` return where they would wait for Ctrl-C, logging left alone."""
    monkeypatch.setattr(cli.serve, "_wait_for_signal", lambda: None)
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)


def results_port(node: NodeProcess) -> int:
    assert node.local_publisher_url is not None
    port = urlparse(node.local_publisher_url).port
    assert port is not None
    return port


def results_notice(wanted: int, port: int) -> str:
    return (
        f"results server: port {wanted} is in use, listening on {port} instead "
        "(give --local-publisher-port to choose the port)"
    )


TOKEN = "bct-a-token-for-these-tests"


def compute_options(
    tmp_path: Path, name: str = "compute", local_publisher_port: int | None = None
) -> NodeOptions:
    return NodeOptions(
        name=name,
        data_dir=tmp_path,
        requester=False,
        local_publisher_port=local_publisher_port,
        cluster_token=TOKEN,
    )


# -- binding ---------------------------------------------------------------------------


def test_a_taken_default_falls_back_to_a_free_port(taken: int) -> None:
    sock, fell_back = bind_default("127.0.0.1", taken, fallback=True)
    with sock:
        assert fell_back
        assert sock.getsockname()[1] not in (taken, 0)


def test_a_taken_port_the_user_chose_is_an_error_naming_the_flag(taken: int) -> None:
    with pytest.raises(PortInUseError) as refused:
        bind_default("127.0.0.1", taken, fallback=False)
    assert str(refused.value) == (
        f"--api-port: 127.0.0.1:{taken} is already in use (another node or program listens "
        "there); pick another --api-port"
    )


def test_a_free_default_is_used_as_it_is() -> None:
    with socket.socket() as probe:  # a port nobody listens on once this one is closed
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sock, fell_back = bind_default("127.0.0.1", port, fallback=True)
    with sock:
        assert not fell_back
        assert sock.getsockname()[1] == port


def test_the_fallback_does_not_hide_an_address_of_another_machine(taken: int) -> None:
    with pytest.raises(ValidationError) as refused:  # TEST-NET-1: not this machine's
        bind_default("192.0.2.1", taken, fallback=True)
    assert not isinstance(refused.value, PortInUseError)
    assert refused.value.field == "--api-host"


# -- nodes -----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_compute_node_on_a_taken_default_results_port_serves_on_another(
    taken_defaults: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    node = NodeProcess(compute_options(tmp_path))
    try:
        node.start()
        port = results_port(node)
        assert port != taken_defaults
        (node.folder / "results" / "e-1.tar.gz").write_bytes(b"archive")
        url = node.result_links.url(str(node.local_publisher_url), "e-1.tar.gz")
        response = httpx.get(url, timeout=10)
        assert (response.status_code, response.content) == (200, b"archive")
        assert node.port_notices == (results_notice(taken_defaults, port),)
    finally:
        node.stop()
    messages = [record.getMessage() for record in caplog.records]
    (fallback,) = [message for message in messages if "event=port_fallback" in message]
    assert "server=results_server" in fallback
    assert results_notice(taken_defaults, port) in fallback
    assert any(m.startswith("event=results_server_listening") for m in messages), messages
    assert not any(m.startswith("event=api_") for m in messages), messages


@pytest.mark.timeout(60)
def test_two_compute_nodes_started_alike_share_the_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's compute command twice (different names, same ports): the second node
    finds the default taken by the first (or by anything else) and moves aside."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        default = int(probe.getsockname()[1])
    monkeypatch.setattr(cli.stack, "DEFAULT_LOCAL_PUBLISHER_PORT", default)
    first, second = (NodeProcess(compute_options(tmp_path, name)) for name in ("c1", "c2"))
    try:
        first.start()
        second.start()
        ports = {results_port(first), results_port(second)}
        assert len(ports) == 2
        assert second.port_notices == (results_notice(default, results_port(second)),)
        for node in (first, second):
            (node.folder / "results" / "e-1.tar.gz").write_bytes(node.node_id.encode())
            url = node.result_links.url(str(node.local_publisher_url), "e-1.tar.gz")
            answer = httpx.get(url, timeout=10)
            assert answer.content == node.node_id.encode()
    finally:
        second.stop()
        first.stop()


def test_a_results_port_given_and_taken_is_an_error_naming_the_flag(
    taken: int, tmp_path: Path
) -> None:
    node = NodeProcess(compute_options(tmp_path, local_publisher_port=taken))
    try:
        with pytest.raises(ValidationError) as refused:
            node.start()
    finally:
        node.stop()
    assert str(refused.value).startswith(
        f"--local-publisher-port: the results server cannot listen on 127.0.0.1:{taken} (in use"
    )


@pytest.mark.timeout(60)
def test_a_requester_on_a_taken_default_api_port_says_where_clients_find_it(
    taken_defaults: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    node = NodeProcess(NodeOptions(name="requester", data_dir=tmp_path, compute=False))
    try:
        node.start()
        port = node.api_port
        assert port is not None
        assert port != taken_defaults
        alive = httpx.get(f"http://127.0.0.1:{port}/api/v1/agent/alive", timeout=10)
        assert alive.json() == {"Status": "OK"}
        (notice,) = node.port_notices
    finally:
        node.stop()
    assert notice.startswith(f"API: port {taken_defaults} is in use, listening on {port} instead")
    assert f"--api-port {port}" in notice
    assert f"BACALAO_API_PORT={port}" in notice
    messages = [record.getMessage() for record in caplog.records]
    assert any("event=port_fallback" in m and "server=api" in m for m in messages), messages
    assert any(m.startswith("event=api_listening") for m in messages), messages


# -- the commands ----------------------------------------------------------------------


def noted_port(stderr: str, what: str) -> int:
    found = re.search(rf"Note: {what}: port \d+ is in use, listening on (\d+) instead", stderr)
    assert found is not None, stderr
    return int(found.group(1))


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("quiet_cli")
def test_serve_on_taken_default_ports_starts_and_says_which_ports(
    taken_defaults: int, tmp_path: Path
) -> None:
    result = CliRunner().invoke(create_app(), ["serve", "--data-dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    api = noted_port(result.stderr, "API")
    results = noted_port(result.stderr, "results server")
    assert taken_defaults not in (api, results)
    assert f"BACALAO_API_PORT={api}" in result.stderr
    assert f"API on http://127.0.0.1:{api}" in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("quiet_cli")
def test_serve_on_free_defaults_prints_no_note(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        default = int(probe.getsockname()[1])
    monkeypatch.setattr(cli.stack, "DEFAULT_API_PORT", default)
    args = ["serve", "--node-type", "requester", "--data-dir", str(tmp_path)]

    result = CliRunner().invoke(create_app(), args)

    assert result.exit_code == 0, result.output
    if f"API on http://127.0.0.1:{default}" in result.stderr:  # nothing took it meanwhile
        assert "Note:" not in result.stderr
    else:
        assert "Note: API: port" in result.stderr


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("quiet_cli")
def test_devstack_on_a_taken_default_api_port_starts_and_says_which(
    monkeypatch: pytest.MonkeyPatch, taken_defaults: int, tmp_path: Path
) -> None:
    ports: list[int] = []

    class RecordedDevstack(Devstack):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            ports.append(self.api_port)

    monkeypatch.setattr(cli.devstack, "Devstack", RecordedDevstack)
    args = ["devstack", "--compute-nodes", "2", "--data-dir", str(tmp_path)]

    result = CliRunner().invoke(create_app(), args)

    assert result.exit_code == 0, result.output
    (port,) = ports
    assert port != taken_defaults
    assert noted_port(result.stderr, "API") == port
    assert f"BACALAO_API_PORT={port}" in result.stderr
    assert f"API on http://127.0.0.1:{port}" in result.stderr
    assert "results server" not in result.stderr  # its compute nodes take free ports anyway


@pytest.mark.parametrize(
    ("given", "flag"),
    [
        (["--api-port", "{port}"], "--api-port"),
        (["--local-publisher-port", "{port}"], "--local-publisher-port"),
    ],
)
@pytest.mark.usefixtures("quiet_cli")
def test_serve_on_a_taken_port_given_is_one_line_naming_the_flag(
    taken: int, tmp_path: Path, given: list[str], flag: str
) -> None:
    args = ["serve", "--data-dir", str(tmp_path), *(a.format(port=taken) for a in given)]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {flag}: ")
    assert f"127.0.0.1:{taken}" in line


@pytest.mark.usefixtures("quiet_cli")
def test_an_api_port_from_the_environment_counts_as_given(taken: int, tmp_path: Path) -> None:
    args = ["serve", "--node-type", "requester", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(create_app(), args, env={"BACALAO_API_PORT": str(taken)})
    assert result.exit_code == 1, result.output
    assert f"Error: --api-port: 127.0.0.1:{taken} is already in use" in result.stderr


def test_the_help_says_a_taken_default_falls_back() -> None:
    result = CliRunner().invoke(create_app(), ["serve", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())
    assert "or a free port when 1234 is taken" in text
    assert "or a free port when 6001 is taken" in text
