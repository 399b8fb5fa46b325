"""A node's settings: flags over environment variables over a ``--config`` file over the
defaults, which live in one place (the flags show those); a file in YAML, JSON or TOML keyed
by the flags' names; every bad file or value is one line naming the key, before anything
starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

import cli.devstack
import cli.serve
from cli.devstack import Devstack
from cli.main import create_app
from cli.node_config import DEFAULTS, DEVSTACK_DEFAULTS, NodeSettings, load_settings
from cli.stack import NodeOptions, NodeProcess
from protocol.errors import ValidationError

YAML = """\
node-type: compute
broker: memory://
labels: {zone: eu-1, disk: ssd}
limit-total-cpu: 2
over_ask: 3
allow-listed-local-paths: /data
max-count: 7
"""


def command_params(name: str) -> dict[str, Any]:
    group = get_command(create_app())
    assert isinstance(group, typer.core.TyperGroup)
    command = group.commands[name]
    return {param.name: param for param in command.params if param.name}


@pytest.mark.parametrize("command", ["serve", "devstack"])
def test_every_flag_is_a_setting_and_shows_the_settings_default(command: str) -> None:
    params = command_params(command)
    settings = set(NodeSettings.model_fields)
    own = {"config", "compute_nodes", "help"} if command == "devstack" else {"config", "help"}
    assert set(params) - own <= settings, "a flag that is not a setting"
    if command == "serve":
        assert settings <= set(params), "a setting serve has no flag for"
    defaults = DEVSTACK_DEFAULTS if command == "devstack" else DEFAULTS
    for name in set(params) - own:
        default = params[name].default
        expected = getattr(defaults, name)
        assert (default or None) == (expected or None), name  # [] and None: no values
        assert params[name].envvar, f"--{name} has no environment variable"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("node.yaml", YAML),
        (
            "node.json",
            json.dumps(
                {
                    "node-type": "compute",
                    "broker": "memory://",
                    "labels": ["zone=eu-1", "disk=ssd"],
                    "limit_total_cpu": "2",
                    "over-ask": 3,
                    "allow-listed-local-paths": ["/data"],
                    "max-count": 7,
                }
            ),
        ),
        (
            "node.toml",
            'node-type = "compute"\nbroker = "memory://"\nlimit-total-cpu = 2\nover-ask = 3\n'
            'allow-listed-local-paths = ["/data"]\nmax-count = 7\n'
            '[labels]\nzone = "eu-1"\ndisk = "ssd"\n',
        ),
    ],
)
def test_a_config_file_in_any_format_gives_the_same_node(
    tmp_path: Path, name: str, text: str
) -> None:
    settings = load_settings({}, write(tmp_path, name, text))
    options = settings.node_options()
    assert (options.requester, options.compute) == (False, True)
    assert options.labels == {"zone": "eu-1", "disk": "ssd"}
    assert options.limit_cpu == 2.0
    assert options.over_ask == 3
    assert options.allowed_local_paths == ("/data",)
    assert options.limits.max_count == 7
    assert options.heartbeat_interval_s == DEFAULTS.heartbeat_interval  # not in the file


def test_what_is_given_overrides_the_file_and_the_file_the_defaults(tmp_path: Path) -> None:
    config = write(tmp_path, "node.yaml", "over-ask: 3\nmax-count: 7\n")
    settings = load_settings({"over_ask": 5}, config)
    assert settings.over_ask == 5
    assert settings.max_count == 7
    assert settings.max_inputs == DEFAULTS.max_inputs


@pytest.mark.parametrize(
    ("name", "text", "field", "problem"),
    [
        ("a.yaml", "over-ask: 50\n", "over-ask", "less than or equal to 20"),
        ("a.yaml", "api-port: abc\n", "api-port", "valid integer"),
        ("a.yaml", "nodetype: compute\n", "nodetype", "not a setting of a node"),
        ("a.yaml", "labels: {zone: 'eu 1'}\n", "labels", "'eu 1' must consist"),
        ("a.yaml", "node-type: gpu\n", "node-type", "use requester, compute"),
        ("a.yaml", "a: [\n", "config", "does not parse"),
        ("a.yaml", "- compute\n", "config", "expected key: value settings"),
        ("a.json", '{"over-ask": ', "config", "does not parse"),
        ("a.toml", "over-ask = \n", "config", "does not parse"),
        ("a.txt", "over-ask: 2\n", "config", "not a config file"),
        ("a.yaml", "lease-ttl: 2\nheartbeat-interval: 5\n", "lease-ttl", "longer than"),
        ("a.yaml", "store: mysql://db/jobs\n", "--store", "unknown store scheme 'mysql'"),
        ("a.yaml", "store: postgresql://u:pw@h:x/db\n", "--store", "u:***@h:x/db: not a"),
    ],
)
def test_a_bad_file_or_value_is_an_error_naming_the_key(
    tmp_path: Path, name: str, text: str, field: str, problem: str
) -> None:
    config = write(tmp_path, name, text)
    with pytest.raises(ValidationError) as raised:
        load_settings({}, config).node_options()
    assert raised.value.field == field
    assert problem in raised.value.problem


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        load_settings({}, tmp_path / "absent.yaml")
    folder = tmp_path / "conf.yaml"
    folder.mkdir()
    with pytest.raises(ValidationError, match="not a file"):
        load_settings({}, folder)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[NodeOptions]:
    """The options of the nodes the command started, read where it would wait for Ctrl-C."""
    seen: list[NodeOptions] = []
    nodes: list[NodeProcess] = []

    class RecordedNode(NodeProcess):
        def start(self) -> None:
            super().start()
            nodes.append(self)

    class RecordedDevstack(Devstack):
        def start(self, timeout_s: float = 30.0) -> None:
            super().start(timeout_s)
            nodes.extend([self.requester, *self.computes])

    monkeypatch.setattr("cli.stack.NodeProcess", RecordedNode)
    monkeypatch.setattr(cli.devstack, "Devstack", RecordedDevstack)
    monkeypatch.setattr(
        cli.serve, "_wait_for_signal", lambda: seen.extend(node.options for node in nodes)
    )
    monkeypatch.setattr(cli.serve, "setup_logging", lambda level: None)
    return seen


@pytest.mark.timeout(60)
def test_serve_takes_flags_over_environment_over_file(
    tmp_path: Path, started: list[NodeOptions]
) -> None:
    config = write(
        tmp_path,
        "node.yaml",
        "node-type: requester\napi-port: 0\nmax-count: 7\nmax-inputs: 9\nmax-result-paths: 11\n",
    )
    args = ["serve", "--config", str(config), "--data-dir", str(tmp_path), "--max-count", "8"]
    env = {"BACALAO_MAX_COUNT": "1", "BACALAO_MAX_INPUTS": "10"}
    result = CliRunner().invoke(create_app(), args, env=env)
    assert result.exit_code == 0, result.output
    (options,) = started
    assert (options.requester, options.compute) == (True, False)
    assert options.limits.max_count == 8  # the flag, over its variable and the file
    assert options.limits.max_inputs == 10  # the variable, over the file
    assert options.limits.max_result_paths == 11  # the file, over the default
    assert options.data_dir == tmp_path


@pytest.mark.timeout(60)
def test_devstack_takes_a_config_file_over_its_own_defaults(
    tmp_path: Path, started: list[NodeOptions]
) -> None:
    config = write(tmp_path, "stack.yaml", "api-port: 0\ndisconnect-after: 7\n")
    args = ["devstack", "--compute-nodes", "1", "--config", str(config)]
    result = CliRunner().invoke(create_app(), [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(started) == 2
    for options in started:
        assert options.disconnect_after_s == 7.0  # the file
        assert options.heartbeat_interval_s == 1.0  # devstack's own default
    assert [options.name for options in started] == ["requester", "compute-0"]


def test_devstack_refuses_what_it_decides_for_its_nodes(tmp_path: Path) -> None:
    config = write(tmp_path, "stack.yaml", "node-type: compute\n")
    args = ["devstack", "--config", str(config), "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 1
    assert "node-type: devstack sets this for each of its nodes" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text", ["over-ask: 50\n", "a: [\n", "- x\n", "tls-cert: /no/such.pem\n"])
def test_serve_with_a_bad_file_says_so_in_one_line_and_starts_nothing(
    tmp_path: Path, text: str
) -> None:
    config = write(tmp_path, "node.yaml", text)
    args = ["serve", "--config", str(config), "--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(create_app(), args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_the_readmes_config_file_is_one_a_node_takes(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```yaml\n# bacalao serve --config") + len("```yaml\n")
    text = readme[start : readme.index("```", start)]
    options = load_settings({}, write(tmp_path, "compute.yaml", text)).node_options()
    assert (options.requester, options.compute) == (False, True)
    assert options.labels == {"zone": "eu", "disk": "ssd"}
    assert options.limit_memory == 4 * 1024**3
    assert options.job_selection.probe_exec == "./should-bid.sh"


@pytest.mark.timeout(60)
def test_log_format_json_writes_one_json_object_per_line(tmp_path: Path) -> None:
    args = ["serve", "--node-type", "requester", "--api-port", "0", "--log-format", "json"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args, "--data-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        records: list[dict[str, Any]] = []
        for line in process.stderr:
            if line.startswith("{"):
                records.append(json.loads(line))
            if any("event=bus_connected" in r["message"] for r in records):
                break
    finally:
        process.terminate()
        process.wait(10)
        process.stderr.close()
    connected = next(r for r in records if "event=bus_connected" in r["message"])
    assert connected["level"] == "INFO"
    assert connected["logger"] == "bacalao.transport"
    assert {"time", "thread"} <= set(connected)


def test_every_flag_has_help() -> None:
    for command in ("serve", "devstack"):
        for name, param in command_params(command).items():
            assert getattr(param, "help", None), f"{command} --{name} has no help"
