"""Bearer tokens on the requester's API: who is served, what a refusal says, and which
addresses may serve an API without a token."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.client import APIClient
from cli.errors import APIError
from cli.main import create_app as create_cli
from protocol.errors import ValidationError
from requester.api import create_app
from requester.api_auth import api_tokens, check_exposure, read_tokens_file
from requester.store import JobStore
from tests.unit.test_api import FakeService, job_with

with warnings.catch_warnings():
    # Starlette asks for httpx2 but still works with httpx; nothing else is silenced.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TOKEN = "tok-the-first-api-token"
OTHER = "tok-the-second-api-token"


@pytest.fixture
def store() -> Iterator[JobStore]:
    with JobStore(":memory:") as opened:
        yield opened


@pytest.fixture
def client(store: JobStore) -> Iterator[TestClient]:
    with TestClient(create_app(FakeService(store), tokens=(TOKEN, OTHER))) as opened:
        yield opened


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "needs an API token"),
        (bearer("tok-not-one-of-them-at-all"), "not one this requester accepts"),
        ({"Authorization": f"Basic {TOKEN}"}, "needs an API token"),
        ({"Authorization": "Bearer"}, "needs an API token"),
    ],
)
def test_a_request_without_a_known_token_is_a_401_in_bacalhaus_shape(
    client: TestClient, headers: dict[str, str], words: str
) -> None:
    response = client.get("/api/v1/orchestrator/jobs", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["Code"] == 401
    assert words in body["Message"]


def test_an_unauthenticated_put_changes_nothing(client: TestClient, store: JobStore) -> None:
    refused = client.put("/api/v1/orchestrator/jobs", json=job_with())
    assert refused.status_code == 401
    assert store.list_jobs() == ([], "")
    accepted = client.put("/api/v1/orchestrator/jobs", json=job_with(), headers=bearer(OTHER))
    assert accepted.status_code == 200, accepted.text
    jobs, _ = store.list_jobs()
    assert [job.id for job in jobs] == [accepted.json()["JobID"]]


def test_every_configured_token_is_served_and_probes_stay_open(client: TestClient) -> None:
    for token in (TOKEN, OTHER):
        assert client.get("/api/v1/agent/version", headers=bearer(token)).status_code == 200
    for probe in ("/api/v1/agent/alive", "/api/v1/healthz", "/api/v1/livez"):
        assert client.get(probe).status_code == 200, probe
    assert client.get("/api/v1/agent/node").status_code == 401


def test_without_tokens_the_api_is_open(store: JobStore) -> None:
    with TestClient(create_app(FakeService(store))) as open_client:
        assert open_client.get("/api/v1/orchestrator/jobs").status_code == 200


def test_the_client_sends_its_token_and_names_the_refusal(client: TestClient) -> None:
    transport = client._transport  # the app, in process
    with APIClient(transport=transport, token=TOKEN) as api:
        assert api.list_jobs().items == ()
    with APIClient(transport=transport) as api, pytest.raises(APIError) as refused:
        api.list_jobs()
    assert refused.value.status_code == 401
    assert "BACALAO_API_TOKEN" in refused.value.message


def test_the_cli_sends_bacalao_api_token_or_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"Items": [], "NextToken": ""})

    def factory(host: str, port: int, **_: object) -> APIClient:
        return APIClient(host, port, transport=httpx.MockTransport(answer))

    app = create_cli(client_factory=factory, poll_interval_s=0)
    runner = CliRunner()
    monkeypatch.delenv("BACALAO_API_TOKEN", raising=False)
    assert runner.invoke(app, ["job", "list"]).exit_code == 0
    monkeypatch.setenv("BACALAO_API_TOKEN", TOKEN)
    assert runner.invoke(app, ["job", "list"]).exit_code == 0
    assert runner.invoke(app, ["--api-token", OTHER, "job", "list"]).exit_code == 0
    assert seen == [None, f"Bearer {TOKEN}", f"Bearer {OTHER}"]


def test_tokens_come_from_flags_and_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# the CI pipeline\n{OTHER}\n\n  {TOKEN}  # the dashboard\n")
    assert read_tokens_file(path) == [OTHER, TOKEN]
    assert api_tokens([TOKEN, " "], path) == (TOKEN, OTHER)
    assert api_tokens([], None) == ()


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("short\n", "api-tokens-file line 1", "at least 16"),
        ("# only a comment\n", "api-tokens-file", "names no token"),
        (f"{TOKEN}\nhas a space in it ok\n", "api-tokens-file line 2", "whitespace"),
    ],
)
def test_a_bad_tokens_file_names_its_line(
    tmp_path: Path, text: str, field: str, words: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ValidationError) as refused:
        read_tokens_file(path)
    assert refused.value.field == field
    assert words in str(refused.value)


def test_a_missing_tokens_file_and_a_short_flag_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read") as missing:
        api_tokens([], tmp_path / "nowhere")
    assert missing.value.field == "api-tokens-file"
    with pytest.raises(ValidationError) as short:
        api_tokens(["secret"], None)
    assert short.value.field == "api-token"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"])
def test_a_loopback_api_may_be_open(host: str) -> None:
    check_exposure(host, (), insecure=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "requester.internal"])
def test_an_api_beyond_loopback_needs_a_token_or_insecure(host: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_exposure(host, (), insecure=False)
    assert refused.value.field == "api-host"
    assert "--api-token" in str(refused.value)
    check_exposure(host, (TOKEN,), insecure=False)
    check_exposure(host, (), insecure=True)


def test_serve_on_every_interface_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    args = ["serve", "--node-type", "requester", "--api-host", "0.0.0.0", "--api-port", "0"]
    result = CliRunner().invoke(create_cli(), [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "api-host" in result.output
    assert "--api-token" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "requester").exists()  # refused before anything was made
