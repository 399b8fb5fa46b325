"""Storage providers that need no service: ``inline`` and ``local``, and the default registry."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import pytest

from compute.storage.inline import InlineStorage, decode_data_url
from compute.storage.local import AllowedPath, LocalStorage, parse_allowed_path
from compute.storage.registry import default_storage
from protocol.errors import ExecutionError, ValidationError
from protocol.job import InputSource, SourceSpec
from protocol.wire import STORED
from tests.support.files import tar_gz


def source(type_name: str, target: str = "/inputs/data", **params: Any) -> InputSource:
    return InputSource.model_validate(  # as the job came in a message
        {"Source": {"Type": type_name, "Params": params}, "Target": target}, context=STORED
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- inline -----------------------------------------------------------------------------


def test_inline_base64_is_written_to_one_read_only_file(tmp_path: Path) -> None:
    mount = InlineStorage().prepare(
        source("inline", URL=f"data:text/plain;base64,{b64(b'hello world')}"), tmp_path
    )
    assert mount.source.parent == tmp_path
    assert mount.source.read_bytes() == b"hello world"
    assert mount.target == "/inputs/data"
    assert mount.read_only


@pytest.mark.parametrize(("target", "name"), [("/inputs/..", "inline"), ("", "inline")])
def test_inline_file_stays_in_staging_whatever_the_target(
    tmp_path: Path, target: str, name: str
) -> None:
    mount = InlineStorage().prepare(source("inline", target, URL="data:,x"), tmp_path / "s")
    assert mount.source == tmp_path / "s" / name


def test_inline_percent_encoded(tmp_path: Path) -> None:
    mount = InlineStorage().prepare(source("inline", URL="data:,a%20b%0Ac%2Cd"), tmp_path)
    assert mount.source.read_bytes() == b"a b\nc,d"


def test_inline_url_safe_base64_without_padding(tmp_path: Path) -> None:
    data = bytes([0xFB, 0xFF, 0xFE, 0x01])
    encoded = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert "-" in encoded or "_" in encoded
    mount = InlineStorage().prepare(source("inline", URL=f"data:;base64,{encoded}"), tmp_path)
    assert mount.source.read_bytes() == data


@pytest.mark.parametrize("mediatype", ["application/gzip", "application/x-gzip", "text/csv+gzip"])
def test_inline_gzip_mediatype_is_gunzipped_into_one_file(tmp_path: Path, mediatype: str) -> None:
    content = b"line\n" * 1000
    url = f"data:{mediatype};base64,{b64(gzip.compress(content))}"
    mount = InlineStorage().prepare(source("inline", URL=url), tmp_path)
    assert mount.source.read_bytes() == content


@pytest.mark.parametrize("mediatype", ["application/octet-stream", ""])
def test_inline_gzip_bytes_under_another_mediatype_are_kept_as_sent(
    tmp_path: Path, mediatype: str
) -> None:
    packed = gzip.compress(b"line\n" * 1000)
    url = f"data:{mediatype};base64,{b64(packed)}"
    mount = InlineStorage().prepare(source("inline", URL=url), tmp_path)
    assert mount.source.read_bytes() == packed


def test_inline_gzip_tar_is_unpacked_into_a_folder_at_the_target(tmp_path: Path) -> None:
    archive = tar_gz({"data/a.csv": b"a,b\n", "data/sub/b.txt": b"b"})
    url = f"data:application/gzip;base64,{b64(archive)}"
    mount = InlineStorage().prepare(source("inline", "/inputs", URL=url), tmp_path / "s")
    assert mount.target == "/inputs"
    assert mount.read_only
    assert mount.source.is_dir()
    assert mount.source.is_relative_to(tmp_path / "s")
    assert (mount.source / "data" / "a.csv").read_bytes() == b"a,b\n"
    assert (mount.source / "data" / "sub" / "b.txt").read_bytes() == b"b"


@pytest.mark.parametrize("name", ["../escaped", "/abs/escaped", "data/../../escaped"])
def test_inline_gzip_tar_members_may_not_leave_the_folder(tmp_path: Path, name: str) -> None:
    url = f"data:application/gzip;base64,{b64(tar_gz({name: b'x'}))}"
    with pytest.raises(ExecutionError, match="inline: the gzip'd tar archive cannot be unpacked"):
        InlineStorage().prepare(source("inline", URL=url), tmp_path / "s")
    assert not (tmp_path / "escaped").exists()
    assert not Path("/abs/escaped").exists()


def test_inline_gzip_tar_over_the_limit_is_refused(tmp_path: Path) -> None:
    url = f"data:application/gzip;base64,{b64(tar_gz({'big': bytes(50_000)}))}"
    with pytest.raises(ExecutionError, match="larger than 10000 bytes once gunzipped"):
        InlineStorage(max_bytes=10_000).prepare(source("inline", URL=url), tmp_path)


def test_inline_gzip_mediatype_with_plain_data_is_refused() -> None:
    with pytest.raises(ExecutionError, match="not valid gzip"):
        decode_data_url(f"data:application/gzip;base64,{b64(b'not gzip')}")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://example.com/x", "data: URL"),
        ("data:text/plain;base64", "data: URL"),
        ("data:;base64,!!!not base64!!!", "not valid base64"),
        ("data:;base64,QUJD=QUJD", "not valid base64"),
    ],
)
def test_inline_malformed_url_names_the_problem(tmp_path: Path, url: str, problem: str) -> None:
    with pytest.raises(ExecutionError, match=problem):
        InlineStorage().prepare(source("inline", URL=url), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_inline_too_big_is_refused(tmp_path: Path) -> None:
    storage = InlineStorage(max_bytes=10)
    assert storage.prepare(source("inline", URL="data:,0123456789"), tmp_path).source.exists()
    with pytest.raises(ExecutionError, match="over the limit of 10"):
        storage.prepare(source("inline", URL=f"data:;base64,{b64(b'x' * 11)}"), tmp_path)


def test_inline_gzip_bomb_is_refused_once_gunzipped() -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)
    assert len(bomb) < 10_000
    with pytest.raises(ExecutionError, match="larger than 10000 bytes once gunzipped"):
        decode_data_url(f"data:application/gzip;base64,{b64(bomb)}", max_bytes=10_000)


def test_inline_reports_local_installed_and_estimated_size() -> None:
    storage = InlineStorage()
    spec = SourceSpec(type="inline", params={"URL": f"data:;base64,{b64(b'x' * 300)}"})
    assert storage.is_installed()
    assert storage.has_locally(spec)
    assert storage.size_bytes(spec) == 300
    unreadable = {"Type": "inline", "Params": {"URL": "nope"}}  # kept as a peer sent it
    assert storage.size_bytes(SourceSpec.model_validate(unreadable, context=STORED)) is None


# --- local ------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``allowed/data/file.txt``, ``allowed-evil/x``, ``secret/key`` and a symlink
    ``allowed/escape -> secret``."""
    root = tmp_path.resolve()
    (root / "allowed" / "data").mkdir(parents=True)
    (root / "allowed" / "data" / "file.txt").write_text("12345")
    (root / "allowed-evil").mkdir()
    (root / "allowed-evil" / "x").write_text("x")
    (root / "secret").mkdir()
    (root / "secret" / "key").write_text("k")
    (root / "allowed" / "escape").symlink_to(root / "secret")
    return root


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("/data", AllowedPath(Path("/data"), read_write=False)),
        ("/data:ro", AllowedPath(Path("/data"), read_write=False)),
        ("/data:rw", AllowedPath(Path("/data"), read_write=True)),
        ("/data/**:rw", AllowedPath(Path("/data"), read_write=True)),
        ("/data/../srv", AllowedPath(Path("/srv"), read_write=False)),
    ],
)
def test_parse_allowed_path(entry: str, expected: AllowedPath) -> None:
    assert parse_allowed_path(entry) == expected


def test_parse_allowed_path_refuses_relative() -> None:
    with pytest.raises(ValidationError, match="absolute"):
        parse_allowed_path("data:rw")


def test_local_allowed_path_is_mounted_in_place_read_only(tree: Path) -> None:
    storage = LocalStorage([tree / "allowed"])
    wanted = source("local", SourcePath=str(tree / "allowed" / "data"))
    mount = storage.prepare(wanted, tree / "staging")
    assert mount.source == tree / "allowed" / "data"
    assert mount.read_only
    assert mount.target == "/inputs/data"
    assert not (tree / "staging").exists()
    assert storage.has_locally(wanted.source)


@pytest.mark.parametrize(
    "relative",
    ["secret/key", "allowed/../secret/key", "allowed/escape/key", "allowed-evil/x"],
)
def test_local_refuses_paths_outside_the_allow_list(tree: Path, relative: str) -> None:
    storage = LocalStorage([tree / "allowed"])
    wanted = source("local", SourcePath=f"{tree}/{relative}")
    assert (tree / relative).exists()
    with pytest.raises(ExecutionError, match="not under an allow-listed path"):
        storage.prepare(wanted, tree / "staging")
    assert not storage.has_locally(wanted.source)
    assert storage.size_bytes(wanted.source) is None


def test_local_read_write_needs_an_rw_entry(tree: Path) -> None:
    wanted = source("local", SourcePath=str(tree / "allowed" / "data"), ReadWrite=True)
    with pytest.raises(ExecutionError, match="read-only"):
        LocalStorage([tree / "allowed"]).prepare(wanted, tree / "staging")
    mount = LocalStorage([f"{tree}/allowed:rw"]).prepare(wanted, tree / "staging")
    assert not mount.read_only
    read_only = source("local", SourcePath=str(tree / "allowed" / "data"))
    assert LocalStorage([f"{tree}/allowed:rw"]).prepare(read_only, tree / "staging").read_only


def test_local_missing_path_is_an_error(tree: Path) -> None:
    storage = LocalStorage([tree / "allowed"])
    wanted = source("local", SourcePath=str(tree / "allowed" / "nope"))
    with pytest.raises(ExecutionError, match="does not exist"):
        storage.prepare(wanted, tree / "staging")
    assert not storage.has_locally(wanted.source)


@pytest.mark.parametrize("create_as", ["dir", "DIR", "Dir"])
def test_local_create_as_dir_makes_a_missing_read_write_folder(tree: Path, create_as: str) -> None:
    """Bacalhau's ``CreateAs: dir`` (in any case), for a ReadWrite source only."""
    storage = LocalStorage([f"{tree}/allowed:rw"])
    path = tree / "allowed" / "made" / "here"
    wanted = source("local", SourcePath=str(path), ReadWrite=True, CreateAs=create_as)
    assert storage.has_locally(wanted.source)  # a node bids on it as if it had it
    mount = storage.prepare(wanted, tree / "staging")
    assert path.is_dir()
    assert list(path.iterdir()) == []
    assert mount.source == path
    assert not mount.read_only
    assert storage.prepare(wanted, tree / "staging").source == path  # there now: used


def test_local_create_as_file_makes_an_empty_file_in_new_folders(tree: Path) -> None:
    storage = LocalStorage([f"{tree}/allowed:rw"])
    path = tree / "allowed" / "logs" / "job.log"
    wanted = source("localDirectory", SourcePath=str(path), ReadWrite=True, CreateAs="file")
    mount = storage.prepare(wanted, tree / "staging")
    assert path.is_file()
    assert path.read_bytes() == b""
    assert mount.source == path
    folder = source("local", SourcePath=f"{tree}/allowed/x/", ReadWrite=True, CreateAs="file")
    with pytest.raises(ExecutionError, match="names a folder"):
        storage.prepare(folder, tree / "staging")


@pytest.mark.parametrize(
    "params",
    [
        {"ReadWrite": False, "CreateAs": "dir"},  # Bacalhau creates only what may be written
        {"ReadWrite": True, "CreateAs": "noCreate"},
        {"ReadWrite": True},  # noCreate is the default
    ],
)
def test_local_missing_path_is_made_only_when_read_write_and_create_as_asks(
    tree: Path, params: dict[str, Any]
) -> None:
    storage = LocalStorage([f"{tree}/allowed:rw"])
    path = tree / "allowed" / "nope"
    wanted = source("local", SourcePath=str(path), **params)
    assert not storage.has_locally(wanted.source)
    with pytest.raises(ExecutionError, match=r"does not exist.*CreateAs"):
        storage.prepare(wanted, tree / "staging")
    assert not path.exists()


def test_local_create_as_stays_inside_the_allow_list(tree: Path) -> None:
    wanted = source("local", SourcePath=f"{tree}/elsewhere", ReadWrite=True, CreateAs="dir")
    with pytest.raises(ExecutionError, match="not under an allow-listed path"):
        LocalStorage([f"{tree}/allowed:rw"]).prepare(wanted, tree / "staging")
    inside = source("local", SourcePath=f"{tree}/allowed/new", ReadWrite=True, CreateAs="dir")
    with pytest.raises(ExecutionError, match="read-only"):
        LocalStorage([tree / "allowed"]).prepare(inside, tree / "staging")
    assert not (tree / "elsewhere").exists()
    assert not (tree / "allowed" / "new").exists()


def test_local_unknown_create_as_is_refused(tree: Path) -> None:
    wanted = source("local", SourcePath=f"{tree}/allowed/new", ReadWrite=True, CreateAs="tree")
    with pytest.raises(ExecutionError, match=r"CreateAs.*not one of dir, file, noCreate"):
        LocalStorage([f"{tree}/allowed:rw"]).prepare(wanted, tree / "staging")


def test_local_relative_source_path_is_an_error(tree: Path) -> None:
    with pytest.raises(ExecutionError, match="absolute path"):
        LocalStorage([tree]).prepare(source("localDirectory", SourcePath="data"), tree)


def test_local_installed_only_with_an_allow_list(tree: Path) -> None:
    assert not LocalStorage().is_installed()
    assert LocalStorage([tree]).is_installed()


def test_local_size_is_walked_and_bounded(tree: Path) -> None:
    folder = tree / "allowed" / "data"
    (folder / "sub").mkdir()
    (folder / "sub" / "more.txt").write_text("123")
    spec = SourceSpec(type="local", params={"SourcePath": str(folder)})
    assert LocalStorage([tree / "allowed"]).size_bytes(spec) == 8
    assert LocalStorage([tree / "allowed"], size_walk_max_files=1).size_bytes(spec) is None
    file_spec = SourceSpec(type="local", params={"SourcePath": str(folder / "file.txt")})
    assert LocalStorage([tree / "allowed"]).size_bytes(file_spec) == 5


# --- registry ---------------------------------------------------------------------------


@pytest.mark.usefixtures("no_aws_credentials")
def test_default_storage_registry(tree: Path) -> None:
    assert default_storage().installed() == ["inline", "urlDownload"]
    assert default_storage().has("s3")  # offered once AWS credentials are found
    registry = default_storage([tree], disabled=["inline"])
    assert registry.installed() == ["local", "urlDownload"]
    assert registry.get("URLDOWNLOAD").type == "urlDownload"
    with pytest.raises(ValidationError, match="not available"):
        registry.get("inline")
