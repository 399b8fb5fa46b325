"""IPFS API addresses, CID checks and the ipfs plugins without a daemon configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.node_parsing import parse_ipfs_api
from compute.publishers.ipfs import IPFSPublisher
from compute.publishers.registry import default_publishers
from compute.storage.ipfs import IPFSStorage
from compute.storage.registry import default_storage
from protocol.errors import ExecutionError, RetryableExecutionError, ValidationError
from protocol.ipfs import APIAddress, check_cid, parse_api_address
from protocol.job import InputSource, SourceSpec

CID_V0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
CID_V1 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


@pytest.mark.parametrize(
    ("text", "multiaddr", "url"),
    [
        ("/ip4/127.0.0.1/tcp/5001", "/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001"),
        ("/ip4/10.0.0.2/tcp/5001/http", "/ip4/10.0.0.2/tcp/5001/http", "http://10.0.0.2:5001"),
        (
            "/dns/ipfs.local/tcp/443/https",
            "/dns/ipfs.local/tcp/443/https",
            "https://ipfs.local:443",
        ),
        ("/ip6/::1/tcp/5001", "/ip6/::1/tcp/5001/http", "http://[::1]:5001"),
        ("http://127.0.0.1:5001", "/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001"),
        ("https://ipfs.example/", "/dns/ipfs.example/tcp/443/https", "https://ipfs.example:443"),
        (" http://[::1]:8080 ", "/ip6/::1/tcp/8080/http", "http://[::1]:8080"),
    ],
)
def test_api_addresses_in_both_forms(text: str, multiaddr: str, url: str) -> None:
    assert parse_api_address(text) == APIAddress(multiaddr, url)


@pytest.mark.parametrize(
    "text", ["", "localhost:5001", "/ip4/127.0.0.1/udp/5001", "/ip4/1.2.3.4/tcp/0", "ftp://h:1"]
)
def test_bad_api_addresses_name_the_flag(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_api_address(text)
    assert caught.value.field == "ipfs-connect"


def test_cids_v0_and_v1_pass_and_malformed_ones_name_the_field() -> None:
    assert check_cid(f" {CID_V0} ") == CID_V0
    assert check_cid(CID_V1) == CID_V1
    for bad in ("", "QmCID", f"/ipfs/{CID_V0}", f"{CID_V0}/sub", "hello"):
        with pytest.raises(ValidationError, match="is not a CID") as caught:
            check_cid(bad, field="Params.CID")
        assert caught.value.field == "Params.CID"


def test_without_an_api_the_plugins_are_not_installed_and_say_why(tmp_path: Path) -> None:
    storage, publisher = IPFSStorage(None), IPFSPublisher(None)
    spec = SourceSpec(type="ipfs", params={"CID": CID_V0})
    assert not storage.is_installed()
    assert not publisher.is_installed()
    assert not storage.has_locally(spec)
    assert storage.size_bytes(spec) is None
    with pytest.raises(ExecutionError, match="no IPFS API configured") as caught:
        storage.prepare(InputSource(source=spec, target="/in"), tmp_path)
    assert not isinstance(caught.value, RetryableExecutionError)


def test_registries_list_ipfs_only_with_an_api(tmp_path: Path) -> None:
    assert default_storage().has("ipfs")
    assert "ipfs" not in default_storage().installed()
    assert "ipfs" not in default_publishers(tmp_path).installed()


def test_serve_checks_the_ipfs_address_before_starting() -> None:
    assert parse_ipfs_api(None) is None
    assert parse_ipfs_api("http://127.0.0.1:5001") == "/ip4/127.0.0.1/tcp/5001/http"
    result = CliRunner().invoke(app, ["serve", "--ipfs-connect", "nonsense"])
    assert result.exit_code == 1
    assert "ipfs-connect" in result.output
    assert "not an IPFS API address" in result.output
