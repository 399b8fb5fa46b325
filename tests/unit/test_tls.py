"""HTTPS on the requester's API: the certificate flags are checked before a node starts,
uvicorn serves TLS with them, and the CLI trusts a private CA given with --tls-ca and says
plainly why it will not talk to a server it cannot trust."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.client import APIClient, trusting
from cli.errors import APIError
from cli.main import create_app as create_cli
from protocol.errors import NotFoundError, TransportError, ValidationError
from protocol.job import SpecConfig
from protocol.results import download_result
from protocol.tls_client import default_trust, handshake_failure
from requester.api import create_app
from requester.server import APIServer
from requester.store import JobStore
from requester.tls import TLSFiles, tls_files
from tests.support.tls import TLSPair, make_tls
from tests.unit.test_api import FakeService


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSPair:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_port(tls: TLSPair) -> Iterator[int]:
    with JobStore(":memory:") as store:
        server = APIServer(
            create_app(FakeService(store)), "127.0.0.1", 0, tls=tls_files(tls.cert, tls.key)
        )
        port = server.start()
        try:
            yield port
        finally:
            server.stop()


def test_no_flags_means_plain_http() -> None:
    assert tls_files(None, None) is None


def test_one_flag_without_the_other_names_the_missing_one(tls: TLSPair) -> None:
    with pytest.raises(ValidationError) as only_cert:
        tls_files(tls.cert, None)
    assert only_cert.value.field == "tls-key"
    with pytest.raises(ValidationError) as only_key:
        tls_files(None, tls.key)
    assert only_key.value.field == "tls-cert"


def test_a_missing_file_or_a_key_of_another_certificate_is_refused(
    tls: TLSPair, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="not a readable file") as missing:
        tls_files(tmp_path / "nope.pem", tls.key)
    assert missing.value.field == "tls-cert"
    other = make_tls(tmp_path / "other")
    with pytest.raises(ValidationError, match="cannot serve TLS") as mismatched:
        tls_files(tls.cert, other.key)
    assert mismatched.value.field == "tls-cert"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match="cannot serve TLS"):
        tls_files(garbage, tls.key)
    assert tls_files(tls.cert, tls.key) == TLSFiles(tls.cert, tls.key)


def test_the_client_trusts_the_private_ca_it_is_given(tls: TLSPair, https_port: int) -> None:
    with APIClient(f"https://127.0.0.1:{https_port}", tls_ca=tls.ca) as client:
        assert client.list_jobs().items == ()


def test_without_the_ca_the_client_refuses_and_says_why(tls: TLSPair, https_port: int) -> None:
    with APIClient(f"https://127.0.0.1:{https_port}") as client, pytest.raises(APIError) as exc:
        client.list_jobs()
    assert "cannot trust the requester" in str(exc.value)
    assert "--tls-ca" in str(exc.value)


def test_a_ca_that_did_not_sign_the_certificate_is_refused(https_port: int, tmp_path: Path) -> None:
    stranger = make_tls(tmp_path / "stranger", ca_name="another CA")
    url = f"https://127.0.0.1:{https_port}"
    with APIClient(url, tls_ca=stranger.ca) as client, pytest.raises(APIError) as exc:
        client.list_jobs()
    assert "cannot trust the requester" in str(exc.value)


@pytest.fixture
def http_port() -> Iterator[int]:
    with JobStore(":memory:") as store:
        server = APIServer(create_app(FakeService(store)), "127.0.0.1", 0)
        port = server.start()
        try:
            yield port
        finally:
            server.stop()


def test_an_encrypted_key_is_refused_at_once_without_asking_for_a_pass_phrase(
    tmp_path: Path,
) -> None:
    locked = make_tls(tmp_path, key_password=b"s3cret")
    with pytest.raises(ValidationError, match="unencrypted") as exc:
        tls_files(locked.cert, locked.key)
    assert exc.value.field == "tls-cert"


def test_https_to_a_plain_http_api_says_the_handshake_failed_not_untrusted(
    tls: TLSPair, http_port: int
) -> None:
    url = f"https://127.0.0.1:{http_port}"
    with APIClient(url, tls_ca=tls.ca) as client, pytest.raises(APIError) as exc:
        client.list_jobs()
    message = str(exc.value)
    assert "TLS handshake" in message
    assert f"http://127.0.0.1:{http_port}" in message
    assert "cannot trust" not in message
    assert "--tls-ca" not in message


def test_the_default_trust_is_a_store_with_cas_in_it() -> None:
    assert default_trust().cert_store_stats()["x509_ca"] > 0
    assert handshake_failure(ValueError("no TLS here")) is None


def test_a_download_from_an_untrusted_results_server_names_tls_ca(
    tls: TLSPair, https_port: int, tmp_path: Path
) -> None:
    spec = SpecConfig(
        type="urlDownload", params={"URL": f"https://127.0.0.1:{https_port}/no-such-result"}
    )
    with pytest.raises(TransportError, match="cannot trust the results server") as exc:
        download_result(spec, tmp_path / "untrusted")
    assert "--tls-ca" in str(exc.value)
    # trusted, the same request gets through the handshake to the server's own answer
    with pytest.raises(NotFoundError):
        download_result(spec, tmp_path / "trusted", verify=trusting(tls.ca))


def test_plain_http_to_an_https_api_hints_at_https(https_port: int) -> None:
    with APIClient("127.0.0.1", https_port) as client, pytest.raises(APIError) as exc:
        client.list_jobs()
    assert f"https://127.0.0.1:{https_port}" in str(exc.value)


def test_a_tls_ca_file_that_is_no_certificate_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("hello\n")
    with pytest.raises(APIError, match="--tls-ca"):
        APIClient("https://127.0.0.1:1", tls_ca=junk)
    with pytest.raises(APIError, match="--tls-ca"):
        APIClient("https://127.0.0.1:1", tls_ca=tmp_path / "absent.pem")


def test_the_cli_reaches_an_https_api_with_tls_ca_or_its_variable(
    tls: TLSPair, https_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_cli(poll_interval_s=0)
    runner = CliRunner()
    url = f"https://127.0.0.1:{https_port}"
    monkeypatch.delenv("BACALAO_TLS_CA", raising=False)
    flagged = runner.invoke(app, ["--api-host", url, "--tls-ca", str(tls.ca), "job", "list"])
    assert flagged.exit_code == 0, flagged.output
    untrusted = runner.invoke(app, ["--api-host", url, "job", "list"])
    assert untrusted.exit_code == 1
    assert "cannot trust" in untrusted.output
    assert "Traceback" not in untrusted.output
    monkeypatch.setenv("BACALAO_TLS_CA", str(tls.ca))
    from_env = runner.invoke(app, ["--api-host", url, "job", "list"])
    assert from_env.exit_code == 0, from_env.output
    junk = runner.invoke(app, ["--api-host", url, "--tls-ca", "/nonexistent/ca.pem", "job", "list"])
    assert junk.exit_code == 1
    assert "--tls-ca" in junk.output
    assert "Traceback" not in junk.output
