"""docker-compose.yml: every bacalao service's command is one our CLI accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cli.main import create_app

ROOT = Path(__file__).resolve().parents[2]


def node_services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {name: spec for name, spec in compose["services"].items() if "build" in spec}


def test_the_cluster_has_a_requester_and_compute_nodes() -> None:
    roles = [
        spec["command"][spec["command"].index("--node-type") + 1]
        for spec in node_services().values()
    ]
    assert roles.count("requester") == 1
    assert roles.count("compute") >= 2


@pytest.mark.parametrize("name", sorted(node_services()))
def test_service_command_parses(name: str) -> None:
    spec = node_services()[name]
    group: Any = typer.main.get_command(create_app())
    command_name, *args = spec["command"]
    command = group.commands[command_name]
    context = command.make_context(command_name, list(args))
    assert context.params["broker"] is None or "://" in context.params["broker"]
    assert spec["environment"]["BACALAO_BROKER"].startswith("${BACALAO_BROKER:-redis://")


def data_dir(spec: dict[str, Any]) -> str:
    command = spec["command"]
    return str(command[command.index("--data-dir") + 1])


def test_compute_nodes_find_the_requesters_cluster_token() -> None:
    # Identity is on by default: a compute node without the token cannot join. The
    # requester writes its token in its data dir, so every node must share that folder.
    services = node_services()
    requester = next(s for s in services.values() if "requester" in s["command"])
    folder = data_dir(requester)
    for name, spec in services.items():
        assert data_dir(spec) == folder, name
        assert any(volume.split(":")[1] == folder for volume in spec["volumes"]), name
        assert "--insecure" not in spec["command"], name
        if spec is not requester:
            assert "requester" in spec["depends_on"], name


def test_the_requester_api_asks_for_the_token_the_cli_sends() -> None:
    # Its API listens on 0.0.0.0 in its container: without a token it would refuse to start.
    services = node_services()
    requester = next(s for s in services.values() if "requester" in s["command"])
    assert requester["command"][requester["command"].index("--api-host") + 1] == "0.0.0.0"
    assert requester["environment"]["BACALAO_API_TOKEN"].startswith("${BACALAO_API_TOKEN:?")
