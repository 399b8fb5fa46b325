"""The ``local`` publisher end to end: archives served by a node's results server over real
HTTP, recorded as ``urlDownload`` and fetched by ``bacalao job get``."""

from __future__ import annotations

import http.client
import socket
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from typer.testing import CliRunner

from cli.devstack import embedded
from cli.main import create_app
from cli.stack import NodeOptions, NodeProcess
from compute.publishers.capability import ResultLinks
from compute.publishers.local import LocalPublisher
from compute.publishers.local_server import results_app
from protocol.errors import ValidationError
from protocol.identity import NodeIdentity
from protocol.job import PublisherSpec, SpecConfig
from protocol.results import download_result
from requester.server import APIServer
from tests.support.files import files_under
from tests.support.identities import TOKEN
from tests.support.jobs import wasm_job
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    (folder / "outputs").mkdir(parents=True)
    (folder / "stdout").write_text("hello\n")
    (folder / "stderr").write_text("")
    (folder / "exitCode").write_text("0")
    (folder / "outputs" / "data.bin").write_bytes(bytes(range(256)) * 64)
    return folder


LINKS = ResultLinks(NodeIdentity.generate().derive_key("results-server"))


@contextmanager
def results_server(folder: Path, links: ResultLinks | None) -> Iterator[str]:
    folder.mkdir(exist_ok=True)
    server = APIServer(results_app(folder, links), "127.0.0.1", 0)
    port = server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A results folder and the base URL of a results server over it that asks for no
    capability (what is and is not served at all)."""
    with results_server(tmp_path / "published", None) as base_url:
        yield tmp_path / "published", base_url


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The same, serving each result only through its capability URL, as nodes do."""
    with results_server(tmp_path / "published", LINKS) as base_url:
        yield tmp_path / "published", base_url


def raw_get(base_url: str, path: str, method: str = "GET") -> int:
    """The status for ``path`` sent exactly as written (httpx would normalise ``..``)."""
    parsed = urlparse(base_url)
    connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=5)
    try:
        connection.request(method, path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_published_archive_is_served_and_downloaded(
    guarded: tuple[Path, str], results: Path, tmp_path: Path
) -> None:
    folder, base_url = guarded
    publisher = LocalPublisher(folder, base_url, LINKS)
    spec = publisher.publish(PublisherSpec(type="local"), "j-1", "e-1", results)
    assert spec is not None
    url = f"{base_url}/e-1.tar.gz?sig={LINKS.token('e-1.tar.gz')}"
    assert spec == SpecConfig(type="urlDownload", params={"URL": url})

    response = httpx.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/gzip"
    assert int(response.headers["content-length"]) == (folder / "e-1.tar.gz").stat().st_size
    head = httpx.head(url)
    assert head.status_code == 200
    assert head.content == b""
    ranged = httpx.get(url, headers={"Range": "bytes=0-1"})
    assert ranged.status_code == 206
    assert ranged.content == b"\x1f\x8b"

    download_result(spec, tmp_path / "job")
    assert files_under(tmp_path / "job") == files_under(results)


def test_results_server_serves_only_published_archives(
    served: tuple[Path, str], tmp_path: Path
) -> None:
    folder, base_url = served
    (folder / ".e-2.tar.gz.partial").write_bytes(b"half")
    (folder / "e-old").mkdir()
    (folder / "e-old" / "stdout").write_text("an old folder result")
    (tmp_path / "secret.tar.gz").write_bytes(b"secret")
    (folder / "link.tar.gz").symlink_to(tmp_path / "secret.tar.gz")
    (folder / "notes.txt").write_text("not an archive")
    for path in [
        "/",
        "/e-old",
        "/e-old/",
        "/e-old/stdout",
        "/.e-2.tar.gz.partial",
        "/link.tar.gz",
        "/notes.txt",
        "/missing.tar.gz",
        "/../secret.tar.gz",
        "/%2e%2e/secret.tar.gz",
        "/..%2fsecret.tar.gz",
        "/e-old%2fstdout",
    ]:
        assert raw_get(base_url, path) == 404, path
    for method in ["PUT", "POST", "DELETE"]:
        assert raw_get(base_url, "/missing.tar.gz", method) == 405, method


def test_a_result_is_served_only_with_its_capability(
    guarded: tuple[Path, str], results: Path
) -> None:
    folder, base_url = guarded
    for execution_id in ("e-1", "e-2"):
        LocalPublisher(folder, base_url, LINKS).publish(
            PublisherSpec(type="local"), "j-1", execution_id, results
        )
    other_node = ResultLinks(NodeIdentity.generate().derive_key("results-server"))
    for query in [
        "",
        "?sig=",
        "?sig=0123456789abcdef0123456789abcdef",
        f"?sig={LINKS.token('e-2.tar.gz')}",  # another result's
        f"?sig={other_node.token('e-1.tar.gz')}",  # another node's
        f"?SIG={LINKS.token('e-1.tar.gz')}",
    ]:
        response = httpx.get(f"{base_url}/e-1.tar.gz{query}")
        assert response.status_code == 403, query
        assert b"\x1f\x8b" not in response.content
    # Without the capability, whether a result exists is not told either.
    assert httpx.get(f"{base_url}/e-9.tar.gz").status_code == 403
    assert httpx.get(f"{base_url}/e-9.tar.gz?sig={LINKS.token('e-9.tar.gz')}").status_code == 404
    assert httpx.get(f"{base_url}/e-2.tar.gz?sig={LINKS.token('e-2.tar.gz')}").status_code == 200


def test_a_node_signs_the_same_links_after_a_restart(tmp_path: Path) -> None:
    first = NodeIdentity.load_or_create(tmp_path / "node")
    again = NodeIdentity.load_or_create(tmp_path / "node")
    key = first.derive_key("results-server")
    assert key == again.derive_key("results-server")
    assert key != first.derive_key("something-else")
    assert ResultLinks(key).token("e-1.tar.gz") == ResultLinks(
        again.derive_key("results-server")
    ).token("e-1.tar.gz")


def results_of(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/orchestrator/jobs/{job_id}/results")
    assert response.status_code == 200, response.text
    return list(response.json()["Items"])


def test_job_get_downloads_local_results_from_each_compute_node(tmp_path: Path) -> None:
    with embedded(compute_nodes=2, data_dir=tmp_path / "stack") as stack:
        served_at = {node.local_publisher_url for node in stack.computes}
        assert len(served_at) == 2, "two nodes in one process serve on different ports"
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.api_port}") as client:
            job = wasm_job(args=["Bacalhau"], count=2)
            job_id = client.put("/api/v1/orchestrator/jobs", json={"Job": job}).json()["JobID"]

            def both_published() -> list[dict[str, Any]] | None:
                found = results_of(client, job_id)
                return found if len(found) == 2 else None

            specs = wait_until(both_published, 30, 0.05, f"two results of {job_id}")
        assert {spec["Type"] for spec in specs} == {"urlDownload"}
        assert {spec["Params"]["URL"].rsplit("/", 1)[0] for spec in specs} == served_at

        out = tmp_path / "out"
        app = create_app(poll_interval_s=0.05)
        args = ["job", "get", job_id, "--output-dir", str(out), "--api-port", str(stack.api_port)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    for execution in ["execution-1", "execution-2"]:
        assert (out / execution / "stdout").read_text() == "Hello, Bacalhau!\n"
        assert (out / execution / "exitCode").read_text().strip() == "0"


def test_archive_is_a_plain_tar_gz_of_the_results_folder(
    served: tuple[Path, str], results: Path
) -> None:
    folder, base_url = served
    LocalPublisher(folder, base_url).publish(PublisherSpec(type="local"), "j-1", "e-3", results)
    with tarfile.open(folder / "e-3.tar.gz", "r:gz") as tar:
        names = sorted(tar.getnames())
    assert names == ["exitCode", "outputs", "outputs/data.bin", "stderr", "stdout"]


def test_a_busy_results_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = NodeOptions(
            name="compute",
            data_dir=tmp_path,
            requester=False,
            local_publisher_port=port,
            cluster_token=TOKEN,
        )
        node = NodeProcess(options)
        try:
            with pytest.raises(
                ValidationError, match=rf"local-publisher-port: .* 127\.0\.0\.1:{port} \(in use"
            ):
                node.start()
        finally:
            node.stop()
