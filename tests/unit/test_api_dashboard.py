"""The dashboard's files as the requester serves them: where, with which headers, outside the
OpenAPI document, without a token (the API behind them still needs one), and nothing in them
loaded from elsewhere or written into the page as markup. The page itself is tested in a
browser: tests/integration/test_dashboard.py."""

from __future__ import annotations

import re
import tomllib
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from requester.api import create_app
from requester.api_dashboard import ASSETS, CONTENT_SECURITY_POLICY
from requester.store import JobStore
from tests.unit.test_api import FakeService

with warnings.catch_warnings():
    # Starlette asks for httpx2 but still works with httpx; nothing else is silenced.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-the-dashboard-test-token"
FOLDER = resources.files("requester.dashboard")
SERVED = [("/dashboard/", "index.html"), *((f"/dashboard/{name}", name) for name in ASSETS)]


@pytest.fixture
def store() -> Iterator[JobStore]:
    with JobStore(":memory:") as opened:
        yield opened


@pytest.fixture
def client(store: JobStore) -> Iterator[TestClient]:
    with TestClient(create_app(FakeService(store))) as opened:
        yield opened


@pytest.fixture
def secured(store: JobStore) -> Iterator[TestClient]:
    with TestClient(create_app(FakeService(store), tokens=(TOKEN,))) as opened:
        yield opened


def test_dashboard_redirects_to_the_page_with_a_slash(client: TestClient) -> None:
    answer = client.get("/dashboard", follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "/dashboard/"


@pytest.mark.parametrize(("path", "name"), SERVED)
def test_every_file_is_served_with_its_type_and_a_strict_policy(
    client: TestClient, path: str, name: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == ASSETS[name]
    assert answer.content == FOLDER.joinpath(name).read_bytes()
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-cache"
    assert client.head(path).status_code == 200


@pytest.mark.parametrize(
    "path", ["/dashboard/missing.js", "/dashboard/__init__.py", "/dashboard/../pyproject.toml"]
)
def test_nothing_else_is_served_under_it(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_routes_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]


def test_with_tokens_the_page_is_served_to_anyone_and_the_api_still_asks(
    secured: TestClient,
) -> None:
    assert secured.get("/dashboard", follow_redirects=False).status_code == 307
    for path, _ in SERVED:
        assert secured.get(path).status_code == 200, path
    assert secured.get("/dashboard/missing.js").status_code == 404
    assert secured.get("/api/v1/orchestrator/jobs").status_code == 401
    for sneaky in ["/dashboard/%2e%2e/api/v1/orchestrator/jobs", "/dashboardx", "/dashboard.js"]:
        assert secured.get(sneaky).status_code in (401, 404), sneaky
        assert "Items" not in secured.get(sneaky).text
    listed = secured.get("/api/v1/orchestrator/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert listed.status_code == 200


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN, no external font, no absolute URL: every src/href is one of its own files."""
    html = FOLDER.joinpath("index.html").read_text(encoding="utf-8")
    linked = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert linked - {"#/"} <= set(ASSETS)
    css = FOLDER.joinpath("style.css").read_text(encoding="utf-8")
    assert "url(" not in css
    assert "@import" not in css
    assert "@font-face" not in css


def test_the_script_writes_no_markup() -> None:
    """Values reach the DOM through textContent and attributes only (job names are user
    input): none of the calls that parse a string as HTML appears in the script."""
    text = FOLDER.joinpath("app.js").read_text(encoding="utf-8")
    script = "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))
    for parsing in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert parsing not in script
    # The token lives in session storage and in the Authorization header, never in a URL.
    assert "localStorage" not in script
    assert "sessionStorage" in script


def test_every_file_is_package_data() -> None:
    """What the folder holds is what the requester serves and what the wheel ships."""
    shipped = {item.name for item in FOLDER.iterdir() if item.is_file()}
    assert shipped - {"__init__.py"} == set(ASSETS) | {"index.html"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["requester.dashboard"]
    suffixes = {pattern.removeprefix("*") for pattern in patterns}
    assert {Path(name).suffix for name in ASSETS} <= suffixes
