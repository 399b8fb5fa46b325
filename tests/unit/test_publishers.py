"""Publishers ``local`` and ``noop``, and ``download_result`` for local results and archives."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from compute.publishers.local import LocalPublisher
from compute.publishers.noop import NoopPublisher
from compute.publishers.registry import default_publishers
from protocol.errors import ExecutionError, NotFoundError, ValidationError
from protocol.job import PublisherSpec, SpecConfig
from protocol.results import download_result, extract_tar, filename_for
from protocol.specs.publishers import LocalResultParams
from tests.support.files import files_under

LOCAL = PublisherSpec(type="local")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    (folder / "outputs" / "nested").mkdir(parents=True)
    (folder / "stdout").write_text("hello\n")
    (folder / "stderr").write_text("")
    (folder / "exitCode").write_text("0")
    (folder / "outputs" / "nested" / "data.bin").write_bytes(bytes(range(256)))
    return folder


def archive_members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            member.name: (tar.extractfile(member) or io.BytesIO()).read()
            for member in tar.getmembers()
            if member.isfile()
        }


def test_local_publish_without_a_server_records_a_file_url_to_the_archive(
    tmp_path: Path, results: Path
) -> None:
    publisher = LocalPublisher(tmp_path / "published")
    spec = publisher.publish(LOCAL, "j-1", "e-1", results)
    assert spec is not None
    assert spec.type == "local"
    archive = (tmp_path / "published" / "e-1.tar.gz").absolute()
    assert LocalResultParams.from_wire(spec.params).url == archive.as_uri()
    assert archive_members(archive) == files_under(results)
    assert results.is_dir(), "the runner's own results folder is left in place"
    assert [p.name for p in (tmp_path / "published").iterdir()] == ["e-1.tar.gz"]

    download_result(spec, tmp_path / "job-j-1")
    assert files_under(tmp_path / "job-j-1") == files_under(results)


def test_local_publish_with_a_server_records_a_url_download(tmp_path: Path, results: Path) -> None:
    publisher = LocalPublisher(tmp_path / "published", "http://10.0.0.7:6001")
    spec = publisher.publish(LOCAL, "j-1", "e-1f2e", results)
    assert spec == SpecConfig(
        type="urlDownload", params={"URL": "http://10.0.0.7:6001/e-1f2e.tar.gz"}
    )
    assert archive_members(tmp_path / "published" / "e-1f2e.tar.gz") == files_under(results)


def test_local_publish_again_replaces_the_old_result(tmp_path: Path, results: Path) -> None:
    publisher = LocalPublisher(tmp_path / "published")
    publisher.publish(LOCAL, "j-1", "e-1", results)
    (results / "stdout").write_text("second\n")
    (results / "outputs" / "nested" / "data.bin").unlink()
    publisher.publish(LOCAL, "j-1", "e-1", results)
    assert archive_members(tmp_path / "published" / "e-1.tar.gz") == files_under(results)
    assert [p.name for p in (tmp_path / "published").iterdir()] == ["e-1.tar.gz"]


def test_local_publish_packs_only_what_a_downloader_accepts(tmp_path: Path, results: Path) -> None:
    (results / "outputs" / "inside").symlink_to("nested/data.bin")
    (results / "outputs" / "outside").symlink_to("/etc/passwd")
    (results / "outputs" / "up").symlink_to("../../..")
    publisher = LocalPublisher(tmp_path / "published")
    spec = publisher.publish(LOCAL, "j-1", "e-1", results)
    assert spec is not None
    with tarfile.open(tmp_path / "published" / "e-1.tar.gz") as tar:
        names = set(tar.getnames())
    assert "outputs/inside" in names
    assert not names & {"outputs/outside", "outputs/up"}
    download_result(spec, tmp_path / "job")
    assert (tmp_path / "job" / "outputs" / "inside").read_bytes() == bytes(range(256))


def test_local_publish_failure_leaves_no_partial_archive(tmp_path: Path, results: Path) -> None:
    (tmp_path / "published" / "e-1.tar.gz").mkdir(parents=True)
    with pytest.raises(ExecutionError, match=r"cannot write .*e-1\.tar\.gz"):
        LocalPublisher(tmp_path / "published").publish(LOCAL, "j-1", "e-1", results)
    assert [p.name for p in (tmp_path / "published").iterdir()] == ["e-1.tar.gz"]


@pytest.mark.parametrize("execution_id", ["", "..", "../e-1", "a/b", ".hidden", "e 1"])
def test_local_publish_refuses_unsafe_execution_ids(
    tmp_path: Path, results: Path, execution_id: str
) -> None:
    with pytest.raises(ExecutionError, match="usable file name"):
        LocalPublisher(tmp_path / "published").publish(LOCAL, "j-1", execution_id, results)


def test_local_publish_of_missing_results_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExecutionError, match="does not exist"):
        LocalPublisher(tmp_path).publish(LOCAL, "j-1", "e-1", tmp_path / "nope")


def test_noop_publishes_nothing(tmp_path: Path, results: Path) -> None:
    publisher = NoopPublisher()
    assert publisher.is_installed()
    assert publisher.publish(PublisherSpec(type="noop"), "j-1", "e-1", results) is None


@pytest.mark.usefixtures("no_aws_credentials")
def test_default_publishers_registry(tmp_path: Path) -> None:
    registry = default_publishers(tmp_path)
    assert registry.installed() == ["local", "noop"]
    assert registry.has("s3")  # offered once AWS credentials are found
    assert isinstance(registry.get("LOCAL"), LocalPublisher)


@pytest.mark.parametrize("type_name", ["noop", "carrier-pigeon"])
def test_download_result_refuses_types_it_cannot_fetch(tmp_path: Path, type_name: str) -> None:
    with pytest.raises(ValidationError, match=type_name):
        download_result(SpecConfig(type=type_name, params={"Bucket": "b"}), tmp_path)


def test_download_result_of_a_missing_local_folder(tmp_path: Path) -> None:
    spec = SpecConfig(type="local", params={"URL": (tmp_path / "gone").as_uri()})
    with pytest.raises(NotFoundError, match="does not exist"):
        download_result(spec, tmp_path / "dest")


def test_download_result_needs_a_file_url(tmp_path: Path) -> None:
    spec = SpecConfig(type="local", params={"URL": "http://example.com/x"})
    with pytest.raises(ValidationError, match="file://"):
        download_result(spec, tmp_path / "dest")


def make_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def test_extract_tar_keeps_the_tree(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", {"stdout": b"hi", "outputs/a.txt": b"a"})
    extract_tar(archive, tmp_path / "dest")
    assert files_under(tmp_path / "dest") == {"outputs/a.txt": b"a", "stdout": b"hi"}


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({"/etc/evil": b"x"}, {}),
        ({"../evil": b"x"}, {}),
        ({"outputs/../../evil": b"x"}, {}),
        ({}, {"outputs/link": "/etc/passwd"}),
        ({}, {"outputs/link": "../../outside"}),
    ],
)
def test_extract_tar_refuses_members_outside_dest(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str]
) -> None:
    archive = make_tar(tmp_path / "bad.tar.gz", members, links)
    with pytest.raises(ValidationError, match="result archive"):
        extract_tar(archive, tmp_path / "dest")
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize(
    ("url", "disposition", "expected"),
    [
        ("http://h/a/b/data.csv?x=1", None, "data.csv"),
        ("http://h/", None, "download"),
        ("http://h/a%20b.txt", None, "a b.txt"),
        ("http://h/x", 'attachment; filename="report.txt"', "report.txt"),
        ("http://h/x", "attachment; filename*=UTF-8''na%C3%AFve.txt", "na\u00efve.txt"),
        ("http://h/x", 'attachment; filename="../../etc/passwd"', "passwd"),
        ("http://h/x", "inline", "x"),
    ],
)
def test_filename_for(url: str, disposition: str | None, expected: str) -> None:
    assert filename_for(url, disposition) == expected
