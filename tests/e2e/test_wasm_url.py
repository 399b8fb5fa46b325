"""A module named by URL is downloaded by the compute node (urlDownload keeps it in a folder
at the Target) and run from there, as ``bacalhau wasm run https://…/main.wasm`` does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from tests.support.http_server import HTTPTestServer, Reply, http_server
from tests.support.jobs import HELLO_WAT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def server() -> Iterator[HTTPTestServer]:
    with http_server() as running:
        yield running


def bacalao(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from cli.main import main; main()", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=90, check=False)


def test_a_module_by_url_runs(server: HTTPTestServer, tmp_path: Path) -> None:
    module = bytes(wasmtime.wat2wasm(HELLO_WAT.read_text()))
    url = server.route("/bin/hello.wasm", Reply(body=module))

    result = bacalao("wasm", "run", "--embedded", url, "Fish", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, Fish!\n"
    assert server.hits["/bin/hello.wasm"] >= 1
