"""The web dashboard in a real browser (Debian's chromium, headless, driven by Playwright)
over a real in-process devstack: the live job list follows a job submitted through the API
to Completed, the job's page shows its execution and its output (live while it runs, from
the logs endpoint), and with API tokens the page asks for one first. Every wait is a
Playwright expectation with a deadline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from cli.devstack import Devstack
from cli.stack import NodeOptions
from tests.support.jobs import ROOT, wasm_job

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

WAIT_MS = 20_000  # the longest any expectation waits (a job takes well under a second)
TOKEN = "dashboard-token-0123456789abcdef"
# A job name is user input: the page must show it as text, never as markup.
HOSTILE_NAME = '<img src="x" id="injected"> & <script>window.injected = 1</script>'
# Says "before" (stdout) and "waiting" (stderr), waits for a file named "go" in /inputs, then
# says "after": its output can be seen live for as long as the test wants.
GATE_WAT = ROOT / "tests" / "fixtures" / "wasm" / "gate.wat"


def new_stack(
    tmp_path: Path,
    compute_nodes: int,
    tokens: tuple[str, ...] = (),
    allowed_local_paths: tuple[str, ...] = (),
) -> Devstack:
    options = NodeOptions(
        name="requester",
        data_dir=tmp_path / "stack",
        api_port=0,
        heartbeat_interval_s=0.2,
        api_tokens=tokens,
        allowed_local_paths=allowed_local_paths,
    )
    return Devstack(options, compute_nodes=compute_nodes)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Devstack]:
    with new_stack(tmp_path, compute_nodes=2) as running:
        yield running


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """The folder the gated program waits in (for a file named ``go``)."""
    folder = tmp_path / "gate"
    folder.mkdir()
    return folder


@pytest.fixture
def gated_stack(tmp_path: Path, gate: Path) -> Iterator[Devstack]:
    with new_stack(tmp_path, compute_nodes=1, allowed_local_paths=(str(gate),)) as running:
        yield running


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Devstack]:
    with new_stack(tmp_path, compute_nodes=1, tokens=(TOKEN,)) as running:
        yield running


class PageErrors:
    """Script errors and console errors of a page (a Content-Security-Policy violation is
    one): a test ends by asserting there were none."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        page.on("pageerror", lambda error: self.seen.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # A 401 the page expects (it then asks for a token) is logged as a failed resource.
        if message.type == "error" and "401" not in message.text:
            self.seen.append(f"console: {message.text}")


def open_page(browser: Browser, url: str) -> tuple[Page, PageErrors]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors = PageErrors(page)
    page.goto(url)
    return page, errors


def submit(api: str, job: dict[str, Any], token: str = "") -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.put(
        f"{api}/api/v1/orchestrator/jobs", json={"Job": job}, headers=headers, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["JobID"])


def test_the_live_list_follows_a_job_to_completed_and_its_page_shows_the_output(
    stack: Devstack, browser: Browser, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    api = f"http://127.0.0.1:{stack.api_port}"
    page, errors = open_page(browser, f"{api}/dashboard")
    assert page.url == f"{api}/dashboard/"

    # The nodes: the requester and both compute nodes, connected, with their free capacity.
    nodes = page.locator("#nodes tbody tr")
    expect(nodes).to_have_count(3)
    for compute in stack.computes:
        row = page.locator(f'#nodes tr[data-node-id="{compute.node_id}"]')
        expect(row).to_contain_text("Compute")
        expect(row).to_contain_text("Connected")
        expect(row).to_contain_text("wasm")
        expect(row.locator("td").nth(5)).to_contain_text(" of ")  # free CPU of the total
    expect(page.locator("#jobs-empty")).to_be_visible()

    # A job submitted after the page loaded shows up in the list and reaches Completed there
    # without a reload: the page polls the API.
    job = wasm_job(args=["Dashboard"])
    job["Name"] = HOSTILE_NAME
    job_id = submit(api, job)
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row.locator(".state")).to_have_text("Completed")
    expect(row.locator("td.name")).to_have_text(HOSTILE_NAME)
    expect(page.locator("#injected")).to_have_count(0)
    assert page.evaluate("window.injected") is None
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # The job's page: its execution, its output, its history.
    row.locator("td.id a").click()
    expect(page.locator("#job")).to_be_visible()
    expect(page.locator("#job-id")).to_have_text(job_id)
    expect(page.locator('#job-summary tr[data-field="State"] .state')).to_have_text("Completed")
    expect(page.locator('#job-summary tr[data-field="Name"] td')).to_have_text(HOSTILE_NAME)
    executions = page.locator("#executions tbody tr")
    expect(executions).to_have_count(1)
    expect(executions.locator(".state")).to_have_text("Completed")
    expect(executions.locator("td").nth(4)).to_have_text("0")  # the exit code
    expect(page.locator("#logs .stream-stdout pre")).to_have_text("Hello, Dashboard!\n")
    expect(page.locator("#history tbody")).to_contain_text("job Running → Completed")
    expect(page.locator("#status")).to_contain_text("nothing more will change")
    assert "#/jobs/" in page.url
    page.screenshot(path=str(tmp_path / "dashboard-job.png"), full_page=True)

    # Back to the overview, by the page's own link.
    page.get_by_role("link", name="← Nodes and jobs").click()
    expect(page.locator("#overview")).to_be_visible()
    expect(row.locator(".state")).to_have_text("Completed")

    assert errors.seen == []
    for shot in ("dashboard.png", "dashboard-job.png"):
        assert (tmp_path / shot).stat().st_size > 0


def test_with_api_tokens_the_page_asks_for_one_and_keeps_it_for_the_tab(
    secured: Devstack, browser: Browser, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    api = f"http://127.0.0.1:{secured.api_port}"
    page, errors = open_page(browser, f"{api}/dashboard/")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#overview")).to_be_hidden()

    page.locator("#token").fill("not-the-token-0123456789")
    page.get_by_role("button", name="Use this token").click()
    expect(page.locator("#token-error")).to_contain_text("not accepted")
    expect(page.locator("#login")).to_be_visible()

    page.locator("#token").fill(TOKEN)
    page.get_by_role("button", name="Use this token").click()
    expect(page.locator("#overview")).to_be_visible()
    expect(page.locator("#nodes tbody tr")).to_have_count(2)
    # Kept in this tab's session storage, and in no URL.
    assert page.evaluate("sessionStorage.getItem('bacalao.apiToken')") == TOKEN
    assert TOKEN not in page.url

    job_id = submit(api, wasm_job(args=["Token"]), token=TOKEN)
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    expect(row.locator(".state")).to_have_text("Completed")

    # A reload does not ask again; the job's page reads the API with the token too.
    page.reload()
    expect(page.locator("#overview")).to_be_visible()
    page.locator(f'#jobs tr[data-job-id="{job_id}"] td.id a').click()
    expect(page.locator("#logs .stream-stdout pre")).to_have_text("Hello, Token!\n")
    assert TOKEN not in page.url
    page.screenshot(path=str(tmp_path / "dashboard-token.png"), full_page=True)

    # Forgetting it asks again.
    page.get_by_role("button", name="Forget token").click()
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('bacalao.apiToken')") is None
    assert errors.seen == []


def test_a_running_jobs_page_shows_its_output_live_then_the_final_output(
    gated_stack: Devstack, gate: Path, browser: Browser, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    api = f"http://127.0.0.1:{gated_stack.api_port}"
    job = wasm_job(GATE_WAT)
    source = {"Type": "localDirectory", "Params": {"SourcePath": str(gate)}}
    job["Tasks"][0]["InputSources"].append({"Source": source, "Target": "/inputs"})
    job_id = submit(api, job)
    page, errors = open_page(browser, f"{api}/dashboard/#/jobs/{job_id}")

    # The program waits for the test: what it said so far is on the page, from the stream.
    expect(page.locator('#job-summary tr[data-field="State"] .state')).to_have_text("Running")
    block = page.locator("#logs article.live")
    expect(block.locator(".stream-stdout pre")).to_have_text("before\n")
    expect(block.locator(".stream-stderr pre")).to_have_text("waiting\n")
    expect(page.locator("#executions tbody .state")).to_have_text("Running")
    page.screenshot(path=str(tmp_path / "dashboard-live.png"), full_page=True)

    (gate / "go").write_text("")
    expect(page.locator('#job-summary tr[data-field="State"] .state')).to_have_text("Completed")
    expect(page.locator("#logs article.live")).to_have_count(0)
    expect(page.locator("#logs .stream-stdout pre")).to_have_text("before\nafter\n")
    expect(page.locator("#logs .stream-stderr pre")).to_have_text("waiting\n")
    assert errors.seen == []
