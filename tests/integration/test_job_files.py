"""Every job file in examples/jobs/ (written from Bacalhau's documented examples) runs as
Bacalhau runs it: ``bacalao job run FILE``, the real CLI in this process, against an
in-process devstack, and prints what EXPECTED below says, once per run (``Count``), with the
result files it lists. A file added to the folder is picked up by itself, and fails until
its expectation is written here.

What the files cannot carry themselves, the test provides:

* Docker images. No registry is reachable from the test machines, so every docker example
  names ``busybox:1.36`` (a real Docker Hub image: the files run unchanged elsewhere) and
  the test tags the private dockerd's ``local/busybox:1`` (built from the host's busybox by
  tests/support/docker_engine.py) with that name. The ``docker_engine`` fixture skips the
  docker examples where dockerd cannot run, and fails them when ``CI`` is set; the wasm
  examples need no daemon and run on a devstack of their own.
* This machine's addresses. The files name ``http://127.0.0.1:8000`` (where
  examples/jobs/README.md serves examples/jobs/data) and ``/tmp/bacalao-examples`` (where it
  copies that data); the test puts a local HTTP server on a free port and a temporary
  folder in their place, in a copy of the file.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import wasmtime
from typer.testing import CliRunner, Result

from cli.devstack import Devstack
from cli.jobspec import load_job
from cli.main import create_app
from cli.stack import NodeOptions
from protocol.execution import Execution
from protocol.specs.engines import DockerParams
from protocol.states import ExecutionStateType
from tests.support.docker_engine import DockerEngine
from tests.support.http_server import HTTPTestServer, Reply, http_server
from tests.support.jobs import HELLO_WAT, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EXAMPLES = ROOT / "examples" / "jobs"
EXAMPLE_FILES = sorted(
    path for path in EXAMPLES.iterdir() if path.suffix in (".yaml", ".yml", ".json")
)
EXAMPLE_IMAGE = "busybox:1.36"
EXAMPLE_URL_BASE = "http://127.0.0.1:8000"
EXAMPLE_DATA_DIR = "/tmp/bacalao-examples"
NODE_LABELS = {"region": "eu-west-1"}  # what constraints-labels.yaml asks the operator for
WAIT_S = 60
GREETING = (EXAMPLES / "data" / "greeting.txt").read_text()


@dataclass(frozen=True)
class Expected:
    """What a file's job does: each run's stdout, how many runs complete (on as many
    nodes), the files ``job get`` fetches (path in its folder -> text), the files left on
    the node in the example data folder, and labels ``job list --labels`` finds it by."""

    stdout: str
    runs: int = 1
    results: Mapping[str, str] = field(default_factory=dict)
    node_files: Mapping[str, str] = field(default_factory=dict)
    labels: str = ""


EXPECTED: dict[str, Expected] = {
    "docker-hello.yaml": Expected("Hello, World!\n"),
    "docker-env-workdir.yaml": Expected("Bonjour, Bacalhau, from /app\n"),
    # Name: /outputs, as Bacalhau's publishing docs write it, is the folder "outputs"
    "docker-outputs.json": Expected("", results={"outputs/results.txt": "results\n"}),
    "resources-timeouts.yaml": Expected("fits\n"),
    "url-download.yaml": Expected(GREETING),
    "local-directory.yaml": Expected(
        GREETING + "kept\n", node_files={"scratch/note.txt": "kept\n"}
    ),
    "wasm-hello.yaml": Expected("Hello, Bacalhau!\n"),
    "wasm-entry-module.yaml": Expected("Hello, Docs!\n"),
    "constraints-labels.yaml": Expected("Hello, Nodes!\n", runs=2, labels="project=examples"),
}


@pytest.fixture(scope="module")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test's /tmp/bacalao-examples: examples/jobs/data, copied."""
    folder = tmp_path_factory.mktemp("bacalao-examples")
    shutil.copytree(EXAMPLES / "data", folder, dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def data_server() -> Iterator[HTTPTestServer]:
    """The test's http://127.0.0.1:8000: examples/jobs/data, served."""
    with http_server() as server:
        for path in (EXAMPLES / "data").iterdir():
            server.route(f"/{path.name}", Reply(body=path.read_bytes()))
        yield server


def stack_options(tmp_path: Path, example_data: Path, docker_host: str | None) -> NodeOptions:
    return NodeOptions(
        name="requester",
        data_dir=tmp_path,
        api_port=0,
        local_publisher_port=0,
        heartbeat_interval_s=0.5,
        labels=NODE_LABELS,
        allowed_local_paths=(f"{example_data}:rw",),
        docker_host=docker_host,
    )


@pytest.fixture(scope="module")
def wasm_stack(tmp_path_factory: pytest.TempPathFactory, example_data: Path) -> Iterator[Devstack]:
    """1 requester + 3 compute nodes: enough for every Count the examples ask."""
    options = stack_options(tmp_path_factory.mktemp("wasm-stack"), example_data, None)
    with Devstack(options, compute_nodes=3) as stack:
        yield stack


@pytest.fixture(scope="module")
def docker_stack(
    tmp_path_factory: pytest.TempPathFactory, example_data: Path, docker_engine: DockerEngine
) -> Iterator[Devstack]:
    """1 requester + 1 compute node on the private dockerd, which has the examples' image."""
    client = docker_engine.client()
    try:
        repository, _, tag = EXAMPLE_IMAGE.rpartition(":")
        client.images.get(docker_engine.image).tag(repository, tag)
    finally:
        client.close()
    root = tmp_path_factory.mktemp("docker-stack")
    with Devstack(stack_options(root, example_data, docker_engine.host), 1) as stack:
        yield stack


def localised(text: str, server: HTTPTestServer, example_data: Path) -> str:
    """The file's text with this machine's addresses in place of the README's."""
    return text.replace(EXAMPLE_URL_BASE, server.base_url).replace(
        EXAMPLE_DATA_DIR, str(example_data)
    )


def bacalao(*args: str) -> Result:
    result = CliRunner().invoke(create_app(), list(args))
    assert result.exit_code == 0, f"bacalao {' '.join(args)}:\n{result.output}"
    return result


def test_every_expectation_names_an_example_file() -> None:
    assert sorted(EXPECTED) == sorted(path.name for path in EXAMPLE_FILES)


def test_the_inline_modules_are_hello_wat_compiled() -> None:
    """The wasm examples carry examples/wasm/hello.wat compiled, as the files say."""
    module = bytes(wasmtime.wat2wasm(HELLO_WAT.read_text()))
    found = 0
    for path in EXAMPLE_FILES:
        for encoded in re.findall(
            r"data:application/wasm;base64,([A-Za-z0-9+/=]+)", path.read_text()
        ):
            assert base64.b64decode(encoded) == module, path.name
            found += 1
    assert found >= 3


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_the_example_runs_as_bacalhau_documents_it(
    path: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    data_server: HTTPTestServer,
    example_data: Path,
) -> None:
    expected = EXPECTED.get(path.name)
    assert expected is not None, f"add what {path.name} prints to EXPECTED in {__file__}"
    original = path.read_text()
    text = localised(original, data_server, example_data)
    engine = load_job(text, path.name).job.task.engine
    if engine.type == "docker":
        image = DockerParams.from_wire(engine.params).image
        assert image == EXAMPLE_IMAGE, f"{path.name}: docker examples use {EXAMPLE_IMAGE}"
    stack: Devstack = request.getfixturevalue(
        "docker_stack" if engine.type == "docker" else "wasm_stack"
    )
    job_file = path
    if text != original:
        job_file = tmp_path / path.name
        job_file.write_text(text)
    api = ("--api-port", str(stack.api_port))

    ran = bacalao("job", "run", str(job_file), *api, "--wait-timeout", str(WAIT_S))

    assert ran.stdout == expected.stdout * expected.runs, ran.stderr
    job = json.loads(bacalao("job", "list", *api, "--output", "json", "--limit", "1").stdout)[0]
    assert job["State"]["StateType"] == "Completed"
    described = json.loads(bacalao("job", "describe", job["ID"], *api, "--output", "json").stdout)
    executions = [Execution.from_wire(item) for item in described["Executions"]]
    done = [item for item in executions if item.state == ExecutionStateType.COMPLETED]
    assert len(done) == expected.runs
    assert len({item.node_id for item in done}) == expected.runs  # one run per node
    assert all(item.run_output and item.run_output.stdout == expected.stdout for item in done)
    if expected.results:
        out = tmp_path / "results"
        bacalao("job", "get", job["ID"], *api, "--output-dir", str(out))
        assert {name: (out / name).read_text() for name in expected.results} == expected.results
        assert (out / "exitCode").read_text().strip() == "0"
    for name, content in expected.node_files.items():
        assert (example_data / name).read_text() == content
    if expected.labels:
        listed = bacalao("job", "list", *api, "--output", "json", "--labels", expected.labels)
        assert job["ID"] in [item["ID"] for item in json.loads(listed.stdout)]
