"""The ``ipfs`` storage provider, publisher and result download against a real IPFS daemon
(js-ipfs, offline in its own network namespace: see ``tests/support/ipfs_server.py``)."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.devstack import Devstack
from cli.main import app
from cli.stack import NodeOptions
from compute.publishers.ipfs import IPFSPublisher
from compute.storage.ipfs import IPFSStorage
from protocol.errors import ExecutionError, RetryableExecutionError, TransportError
from protocol.job import InputSource, PublisherSpec, SourceSpec, SpecConfig
from protocol.results import download_result
from tests.support.files import files_under
from tests.support.ipfs_server import IPFSNode
from tests.support.jobs import run_job, wasm_job
from tests.support.progress import RecordingProgress
from tests.support.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
CAT_WAT = ROOT / "tests" / "fixtures" / "wasm" / "cat.wat"


def add_bytes(node: IPFSNode, payload: bytes) -> str:
    return str(node.client().add(io.BytesIO(payload))["Hash"])


def add_folder(node: IPFSNode, folder: Path) -> str:
    added = node.client().add(str(folder), recursive=True)
    return next(str(entry["Hash"]) for entry in added if entry["Name"] == folder.name)


def missing_cid(node: IPFSNode) -> str:
    """A well-formed CID of content this node has never stored (only hashed)."""
    return str(node.client().add(io.BytesIO(os.urandom(64)), only_hash=True)["Hash"])


def ipfs_source(cid: str, target: str) -> InputSource:
    return InputSource(source=SourceSpec(type="ipfs", params={"CID": cid}), target=target)


def dead_api() -> str:
    return f"/ip4/127.0.0.1/tcp/{free_port()}"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "dataset"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "empty").mkdir()
    (folder / "a.csv").write_text("x,y\n1,2\n")
    (folder / ".hidden").write_text("kept\n")
    (folder / "nested" / "deeper" / "blob.bin").write_bytes(os.urandom(300_000))
    (folder / "nested" / "zero.txt").write_bytes(b"")
    return folder


def test_file_cid_is_mounted_as_the_target_file(ipfs_node: IPFSNode, tmp_path: Path) -> None:
    cid = add_bytes(ipfs_node, b"hello from ipfs\n")
    storage = IPFSStorage(ipfs_node.api_multiaddr)
    assert storage.is_installed()

    mount = storage.prepare(ipfs_source(cid, "/inputs/data.txt"), tmp_path / "staging")

    assert mount.target == "/inputs/data.txt"
    assert mount.read_only
    assert mount.source == tmp_path / "staging" / cid
    assert mount.source.read_bytes() == b"hello from ipfs\n"
    spec = ipfs_source(cid, "/x").source
    assert storage.has_locally(spec)
    size = storage.size_bytes(spec)
    assert size is not None
    assert size >= len(b"hello from ipfs\n")


def test_directory_cid_is_mounted_as_the_target_folder(
    ipfs_node: IPFSNode, dataset: Path, tmp_path: Path
) -> None:
    cid = add_folder(ipfs_node, dataset)
    storage = IPFSStorage(ipfs_node.api_multiaddr)

    mount = storage.prepare(ipfs_source(cid, "/inputs"), tmp_path / "staging")

    assert mount.target == "/inputs"
    assert mount.source.is_dir()
    assert files_under(mount.source) == files_under(dataset)
    assert (mount.source / "empty").is_dir()
    assert [p.name for p in (tmp_path / "staging").iterdir()] == [cid]  # no leftovers


def test_a_cid_nobody_has_fails_clearly_within_the_find_timeout(
    ipfs_node: IPFSNode, tmp_path: Path
) -> None:
    cid = missing_cid(ipfs_node)
    storage = IPFSStorage(ipfs_node.api_multiaddr, find_timeout_s=2.0, size_timeout_s=1.0)

    started = time.monotonic()
    with pytest.raises(ExecutionError) as caught:
        storage.prepare(ipfs_source(cid, "/inputs"), tmp_path / "staging")
    assert time.monotonic() - started < 10
    assert not isinstance(caught.value, RetryableExecutionError)
    assert cid in str(caught.value)
    assert "not found within 2s" in str(caught.value)
    assert not storage.has_locally(ipfs_source(cid, "/x").source)
    assert storage.size_bytes(ipfs_source(cid, "/x").source) is None


@pytest.mark.parametrize(
    "bad", ["not-a-cid", "QmTooShort", "/ipfs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"]
)
def test_a_malformed_cid_names_the_field(ipfs_node: IPFSNode, tmp_path: Path, bad: str) -> None:
    storage = IPFSStorage(ipfs_node.api_multiaddr)
    with pytest.raises(ExecutionError, match=r"Source\.Params\.CID: .* is not a CID") as caught:
        storage.prepare(ipfs_source(bad, "/inputs"), tmp_path / "staging")
    assert not isinstance(caught.value, RetryableExecutionError)


def test_nothing_is_installed_when_the_api_is_down_or_not_configured(tmp_path: Path) -> None:
    api = dead_api()
    storage, publisher = IPFSStorage(api), IPFSPublisher(api)
    started = time.monotonic()
    assert not storage.is_installed()
    assert not publisher.is_installed()
    assert time.monotonic() - started < 5
    assert not IPFSStorage(None).is_installed()
    assert not IPFSPublisher(None).is_installed()

    cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    with pytest.raises(RetryableExecutionError, match="cannot reach the IPFS API"):
        storage.prepare(ipfs_source(cid, "/inputs"), tmp_path / "staging")
    (tmp_path / "results").mkdir()
    with pytest.raises(RetryableExecutionError, match="cannot reach the IPFS API"):
        publisher.publish(PublisherSpec(type="ipfs"), "j-1", "e-1", tmp_path / "results")


def test_published_results_download_with_the_same_content(
    ipfs_node: IPFSNode, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "results"
    (results / "outputs").mkdir(parents=True)
    (results / "stdout").write_text("out\n")
    (results / "stderr").write_text("")
    (results / "exitCode").write_text("0")
    (results / "outputs" / "copy.bin").write_bytes(os.urandom(100_000))
    publisher = IPFSPublisher(ipfs_node.api_multiaddr)
    assert publisher.is_installed()

    spec = publisher.publish(PublisherSpec(type="ipfs"), "j-1", "e-1", results)

    assert spec is not None
    assert spec.type == "ipfs"
    cid = spec.params["CID"]
    assert ipfs_node.client().pin.ls(cid)["Keys"][cid]["Type"] == "recursive"
    download_result(spec, tmp_path / "by-option", ipfs_api=ipfs_node.api_multiaddr)
    assert files_under(tmp_path / "by-option") == files_under(results)
    monkeypatch.setenv("BACALAO_IPFS_API", ipfs_node.api_url)
    download_result(spec, tmp_path / "by-env")
    assert files_under(tmp_path / "by-env") == files_under(results)


def test_download_result_reports_progress_chunk_by_chunk(
    ipfs_node: IPFSNode, dataset: Path, tmp_path: Path
) -> None:
    cid = add_folder(ipfs_node, dataset)
    spec = SpecConfig(type="ipfs", params={"CID": cid})
    progress = RecordingProgress()

    download_result(spec, tmp_path / "out", ipfs_api=ipfs_node.api_multiaddr, progress=progress)

    dag_bytes = int(ipfs_node.client().files.stat(f"/ipfs/{cid}")["CumulativeSize"])
    assert progress.started == [(f"ipfs://{cid}", dag_bytes)]
    assert progress.grew_to(progress.received_bytes)
    content_bytes = sum(len(body) for body in files_under(dataset).values())
    assert progress.received_bytes > content_bytes  # the tar stream: content and headers
    assert files_under(tmp_path / "out") == files_under(dataset)


def test_download_result_names_the_unreachable_daemon(tmp_path: Path) -> None:
    spec = SpecConfig(type="ipfs", params={"CID": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"})
    with pytest.raises(TransportError, match=r"cannot reach the IPFS API.*--ipfs-connect"):
        download_result(spec, tmp_path / "out", ipfs_api=dead_api())


@pytest.fixture(scope="module")
def devstack(ipfs_node: IPFSNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path_factory.mktemp("ipfs-devstack"),
        api_port=0,
        heartbeat_interval_s=0.2,
        ipfs_api=ipfs_node.api_multiaddr,
    )
    with Devstack(options, compute_nodes=1) as stack:
        yield stack


def test_wasm_job_reads_from_and_publishes_to_ipfs(
    ipfs_node: IPFSNode, devstack: Devstack, tmp_path: Path
) -> None:
    cid = add_bytes(ipfs_node, b"from ipfs\n")
    job = wasm_job(
        CAT_WAT,
        args=["/inputs/data.txt", "/outputs/copy.txt"],
        ResultPaths=[{"Name": "outputs", "Path": "/outputs"}],
        Publisher={"Type": "ipfs"},
    )
    job["Tasks"][0]["InputSources"].append(
        {"Source": {"Type": "ipfs", "Params": {"CID": cid}}, "Target": "/inputs/data.txt"}
    )

    ended = run_job(devstack.api_port, job)

    assert ended["State"]["StateType"] == "Completed", ended
    published = [e["PublishedResult"] for e in ended["executions"] if e.get("PublishedResult")]
    assert [spec["Type"] for spec in published] == ["ipfs"], ended["executions"]
    out = tmp_path / "out"
    cli = CliRunner().invoke(
        app,
        [
            "job", "get", ended["ID"], "--output-dir", str(out),
            "--api-port", str(devstack.api_port), "--ipfs-connect", ipfs_node.api_multiaddr,
        ],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert (out / "outputs" / "copy.txt").read_text() == "from ipfs\n"
    assert (out / "exitCode").read_text() == "0"
