"""``urlDownload`` storage and ``download_result`` against a real HTTP server on 127.0.0.1;
and a compute node staging from it, whose deadline and cancel stop a download at once."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from compute.config import ComputeConfig
from compute.executors.interrupts import RunControls
from compute.executors.noop import NoopExecutor
from compute.node import ComputeNode
from compute.publishers.noop import NoopPublisher
from compute.registry import Registry
from compute.runner import Plugins
from compute.storage.urldownload import URLDownloadStorage
from protocol.envelope import Envelope
from protocol.errors import (
    ExecutionError,
    NotFoundError,
    RetryableExecutionError,
    ValidationError,
)
from protocol.execution import ComputeState, Execution
from protocol.job import InputSource, Job, SourceSpec, SpecConfig
from protocol.messages import (
    AskForBid,
    BidAccepted,
    BidResult,
    CancelExecution,
    ComputeError,
    ExecutionStarted,
)
from protocol.resources import Resources
from protocol.results import download_result
from protocol.states import ExecutionStateType
from protocol.wire import STORED
from tests.support.files import tar_gz
from tests.support.http_server import HTTPTestServer, Reply, http_server, redirect
from tests.support.recorders import Recorder
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

BODY = b"id,value\n1,one\n2,two\n"
LIMIT_BYTES = 10_000


@pytest.fixture
def server() -> Iterator[HTTPTestServer]:
    with http_server() as running:
        yield running


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def storage(waits: list[float]) -> URLDownloadStorage:
    return URLDownloadStorage(max_bytes=LIMIT_BYTES, max_attempts=3, sleep=waits.append)


def url_source(url: str, target: str = "/inputs") -> InputSource:
    return InputSource.model_validate(
        {"Source": {"Type": "urlDownload", "Params": {"URL": url}}, "Target": target}
    )


def staged(folder: Path) -> dict[str, bytes]:
    """Every entry in the staging folder, hidden ones included (partial files must not stay)."""
    return {path.name: path.read_bytes() for path in folder.iterdir()}


# --- file names ---------------------------------------------------------------------------


def test_download_into_target_folder_named_after_url(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    server.route("/files/data.csv", Reply(body=BODY))
    mount = storage.prepare(url_source(server.url("/files/data.csv?v=2")), tmp_path)
    assert mount.source == tmp_path
    assert mount.target == "/inputs"
    assert mount.read_only
    assert staged(tmp_path) == {"data.csv": BODY}


@pytest.mark.parametrize(
    ("path", "disposition", "name"),
    [
        ("/named", 'attachment; filename="report.csv"', "report.csv"),
        ("/named", "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt", "r\u00e9sum\u00e9.txt"),
        ("/named", 'attachment; filename="../../etc/passwd"', "passwd"),
        ("/named", 'attachment; filename=".."', "download"),
        ("/named", "inline", "named"),
        ("/a%20b.txt", None, "a b.txt"),
        ("/", None, "download"),
        ("/dir/", None, "dir"),
        ("/.download.partial", None, "download"),
    ],
)
def test_file_name_rules(
    server: HTTPTestServer,
    storage: URLDownloadStorage,
    tmp_path: Path,
    path: str,
    disposition: str | None,
    name: str,
) -> None:
    headers = {"Content-Disposition": disposition} if disposition else {}
    server.route(path, Reply(body=BODY, headers=headers))
    storage.prepare(url_source(server.url(path)), tmp_path)
    assert staged(tmp_path) == {name: BODY}


# --- redirects ----------------------------------------------------------------------------


def test_redirect_chain_is_followed_and_named_after_the_final_url(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    server.route("/old", redirect("/moved", 301))
    server.route("/moved", redirect(server.url("/files/data.csv"), 302))
    server.route("/files/data.csv", Reply(body=BODY))
    storage.prepare(url_source(server.url("/old")), tmp_path)
    assert staged(tmp_path) == {"data.csv": BODY}
    assert server.hits == Counter({"/old": 1, "/moved": 1, "/files/data.csv": 1})


def test_redirect_loop_is_a_job_error(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path, waits: list[float]
) -> None:
    server.route("/ping", redirect("/pong"))
    server.route("/pong", redirect("/ping"))
    with pytest.raises(ExecutionError, match="TooManyRedirects") as caught:
        storage.prepare(url_source(server.url("/ping")), tmp_path)
    assert not isinstance(caught.value, RetryableExecutionError)
    assert waits == []
    assert staged(tmp_path) == {}


def test_redirect_to_a_missing_file_names_both_urls(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    server.route("/old", redirect("/gone"))
    with pytest.raises(ExecutionError, match=r"/old: 404 Not Found \(redirected to .*/gone\)"):
        storage.prepare(url_source(server.url("/old")), tmp_path)


# --- status codes and retries -------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 410])
def test_client_errors_are_job_errors_and_not_retried(
    server: HTTPTestServer,
    storage: URLDownloadStorage,
    tmp_path: Path,
    waits: list[float],
    status: int,
) -> None:
    url = server.route("/missing", Reply(status=status, body=b"no"))
    with pytest.raises(ExecutionError, match=re.escape(f"GET {url}: {status} ")) as caught:
        storage.prepare(url_source(url), tmp_path)
    assert not isinstance(caught.value, RetryableExecutionError)
    assert server.hits["/missing"] == 1
    assert waits == []
    assert staged(tmp_path) == {}


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_transient_statuses_are_retried_with_backoff(
    server: HTTPTestServer,
    storage: URLDownloadStorage,
    tmp_path: Path,
    waits: list[float],
    status: int,
) -> None:
    url = server.route("/flaky", Reply(status=status), Reply(status=status), Reply(body=BODY))
    storage.prepare(url_source(url), tmp_path)
    assert staged(tmp_path) == {"flaky": BODY}
    assert server.hits["/flaky"] == 3
    assert waits == [1.0, 2.0]


def test_retries_exhausted_is_retryable(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path, waits: list[float]
) -> None:
    url = server.route("/down", Reply(status=503, body=b"down"))
    with pytest.raises(
        RetryableExecutionError, match=r"503 Service Unavailable \(gave up after 3 attempts\)"
    ):
        storage.prepare(url_source(url), tmp_path)
    assert server.hits["/down"] == 3
    assert waits == [1.0, 2.0]
    assert staged(tmp_path) == {}


def test_backoff_is_capped() -> None:
    storage = URLDownloadStorage(backoff_s=1.0, max_backoff_s=5.0)
    assert [storage.backoff_for(attempt) for attempt in range(1, 6)] == [1, 2, 4, 5, 5]


def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = URLDownloadStorage(max_attempts=2, sleep=lambda _s: None)
    with pytest.raises(RetryableExecutionError, match="ConnectError"):
        storage.prepare(url_source(f"http://127.0.0.1:{port}/x"), tmp_path)


# --- size limits --------------------------------------------------------------------------


def test_body_exactly_at_the_limit_is_accepted(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    body = b"x" * LIMIT_BYTES
    for framing in ("length", "chunked", "close"):
        path = f"/exact-{framing}"
        server.route(path, Reply(body=body, framing=framing))
        storage.prepare(url_source(server.url(path)), tmp_path / framing)
        assert staged(tmp_path / framing) == {path[1:]: body}


def test_content_length_over_limit_is_refused_up_front(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path, waits: list[float]
) -> None:
    url = server.route("/big", Reply(body=b"x" * (LIMIT_BYTES + 1)))
    with pytest.raises(ExecutionError, match="Content-Length 10001 bytes is over the limit") as e:
        storage.prepare(url_source(url), tmp_path)
    assert not isinstance(e.value, RetryableExecutionError)
    assert waits == []
    assert staged(tmp_path) == {}


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_unannounced_body_over_limit_is_refused_while_streaming(
    server: HTTPTestServer, storage: URLDownloadStorage, tmp_path: Path, framing: str
) -> None:
    url = server.route("/big", Reply(body=b"z" * (LIMIT_BYTES * 3), framing=framing))  # type: ignore[arg-type]
    with pytest.raises(ExecutionError, match="body is over the limit of 10000 bytes") as e:
        storage.prepare(url_source(url), tmp_path)
    assert not isinstance(e.value, RetryableExecutionError)
    assert server.hits["/big"] == 1
    assert staged(tmp_path) == {}


# --- timeouts -----------------------------------------------------------------------------


def test_no_answer_times_out_retries_then_is_retryable(
    server: HTTPTestServer, tmp_path: Path
) -> None:
    waits: list[float] = []
    storage = URLDownloadStorage(read_timeout_s=0.2, max_attempts=2, sleep=waits.append)
    url = server.route("/hang", Reply(stall_before_headers=True))
    with pytest.raises(RetryableExecutionError, match="ReadTimeout"):
        storage.prepare(url_source(url), tmp_path)
    # The server counts a request once its handler thread has read it, which under load may
    # be after the client's 0.2 s read timeout has already ended the attempt.
    wait_until(lambda: server.hits["/hang"] == 2, 5, message="the second request")
    assert waits == [1.0]
    assert staged(tmp_path) == {}


def test_body_stalling_midway_leaves_no_partial_file(
    server: HTTPTestServer, tmp_path: Path
) -> None:
    storage = URLDownloadStorage(read_timeout_s=0.2, max_attempts=1)
    url = server.route("/slow", Reply(body=BODY * 1000, stall_after_bytes=5000, chunk_bytes=1000))
    with pytest.raises(RetryableExecutionError, match="ReadTimeout"):
        storage.prepare(url_source(url), tmp_path)
    assert staged(tmp_path) == {}


def test_a_stalled_attempt_is_replaced_by_a_complete_one(
    server: HTTPTestServer, tmp_path: Path
) -> None:
    waits: list[float] = []
    storage = URLDownloadStorage(read_timeout_s=0.2, max_attempts=2, sleep=waits.append)
    body = BODY * 1000
    url = server.route(
        "/data.csv", Reply(body=body, stall_after_bytes=len(body) // 2), Reply(body=body)
    )
    storage.prepare(url_source(url), tmp_path)
    assert staged(tmp_path) == {"data.csv": body}
    assert waits == [1.0]


# --- staging deadline and cancel: what a read timeout cannot catch -------------------------

DRIP_BYTES = 200
# One byte every 50 ms: 10 s for the whole body, and never a read long enough to time out.
DRIP = Reply(body=b"x" * DRIP_BYTES, chunk_bytes=1, drip_interval_s=0.05)
PROMPT_S = 2.0


def test_a_dripping_body_is_stopped_at_the_deadline(server: HTTPTestServer, tmp_path: Path) -> None:
    url = server.route("/drip", DRIP)
    started = time.monotonic()
    with (
        RunControls().track("e-1", 0.5) as control,
        pytest.raises(ExecutionError, match=re.escape(f"GET {url}: download stopped (timeout)")),
    ):
        URLDownloadStorage().prepare_interruptible(url_source(url), tmp_path, control)
    assert time.monotonic() - started < 0.5 + PROMPT_S
    assert staged(tmp_path) == {}


def test_the_deadline_ends_the_backoff_and_no_retry_follows(
    server: HTTPTestServer, tmp_path: Path
) -> None:
    storage = URLDownloadStorage(max_attempts=3, backoff_s=30.0)
    url = server.route("/flaky", Reply(status=503))
    started = time.monotonic()
    with (
        RunControls().track("e-1", 0.5) as control,
        pytest.raises(ExecutionError, match=r"download stopped \(timeout\)"),
    ):
        storage.prepare_interruptible(url_source(url), tmp_path, control)
    assert time.monotonic() - started < 0.5 + PROMPT_S
    assert server.hits["/flaky"] == 1


def streaming(folder: Path) -> bool:
    """The headers are in and the body is being written (to the partial file)."""
    return (folder / ".download.partial").exists()


def cancelled_midway(
    storage: URLDownloadStorage, url: str, folder: Path, started: Callable[[], bool]
) -> list[Exception]:
    """Stage ``url`` in a thread, cancel it once ``started()``; what staging raised. The
    cancel must end it within PROMPT_S."""
    controls = RunControls()
    raised: list[Exception] = []

    def stage() -> None:
        with controls.track("e-1", 0) as control:
            try:
                storage.prepare_interruptible(url_source(url), folder, control)
            except Exception as exc:
                raised.append(exc)

    thread = threading.Thread(target=stage)
    thread.start()
    wait_until(started, 10, message="the download to start")
    cancelled_at = time.monotonic()
    controls.cancel("e-1")
    thread.join(10)
    assert time.monotonic() - cancelled_at < PROMPT_S
    return raised


@pytest.mark.parametrize(
    ("reply", "body_started"),
    [
        (DRIP, True),
        (Reply(body=BODY * 1000, stall_after_bytes=5000, chunk_bytes=1000), True),
        (Reply(stall_before_headers=True), False),
    ],
    ids=["dripping", "stalled-mid-body", "stalled-before-headers"],
)
def test_a_cancel_stops_a_download_at_once(
    server: HTTPTestServer, tmp_path: Path, reply: Reply, body_started: bool
) -> None:
    storage = URLDownloadStorage()  # a 60 s read timeout: not what ends these
    url = server.route("/slow", reply)

    def started() -> bool:
        return streaming(tmp_path) if body_started else server.hits["/slow"] == 1

    raised = cancelled_midway(storage, url, tmp_path, started)
    assert [str(exc) for exc in raised] == [f"GET {url}: download stopped (cancelled)"]
    assert server.hits["/slow"] == 1
    assert staged(tmp_path) == {}


def test_a_cancel_stops_an_https_download_at_once(tmp_path: Path) -> None:
    """TLS takes over the TCP socket: the stop must reach the one that reads."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    storage = URLDownloadStorage(transport=httpx.HTTPTransport(verify=client_context))
    with http_server(tls=server_context) as server:
        url = server.route("/slow", Reply(body=BODY * 1000, stall_after_bytes=5000))
        assert url.startswith("https://")
        raised = cancelled_midway(storage, url, tmp_path, lambda: streaming(tmp_path))
    assert [str(exc) for exc in raised] == [f"GET {url}: download stopped (cancelled)"]
    assert staged(tmp_path) == {}


NODE_MAX = Resources(cpu=2, memory=1024**3)


@pytest.fixture
def staging_node(tmp_path: Path) -> Iterator[tuple[ComputeNode, Recorder]]:
    outbox = Recorder()
    plugins = Plugins(
        executors=Registry("executor", [NoopExecutor()]),
        storage=Registry("storage source", [URLDownloadStorage()]),
        publishers=Registry("publisher", [NoopPublisher()]),
    )
    node = ComputeNode("n-compute", ComputeConfig(NODE_MAX), plugins, outbox, tmp_path / "node")
    node.start()
    yield node, outbox
    node.close()


def start_job(node: ComputeNode, outbox: Recorder, url: str, timeout_s: int = 0) -> None:
    """Ask, win the bid and accept: a noop task whose one input is ``url``."""
    task = {
        "Engine": {"Type": "noop"},
        "Publisher": {"Type": "noop"},
        "Resources": {"CPU": "2"},
        "InputSources": [{"Source": {"Type": "urlDownload", "Params": {"URL": url}}}],
        "Timeouts": {"ExecutionTimeout": timeout_s},
    }
    job = Job.model_validate({"ID": "j-1", "Tasks": [task]})
    execution = Execution(
        id="e-1",
        job_id=job.id,
        node_id=node.node_id,
        compute_state=ComputeState(state_type=ExecutionStateType.ASK_FOR_BID),
        job=job,
        allocated_resources={"Tasks": {job.task.name: {"CPU": 2}}},
    )
    node.handle(Envelope("AskForBid", "m-1", "n-req", 0, AskForBid(execution=execution)))
    wait_until(lambda: outbox.of(BidResult), 10, message="the bid")
    assert [bid.accepted for bid in outbox.of(BidResult) if isinstance(bid, BidResult)] == [True]
    accept = BidAccepted(execution_id="e-1", job_id=job.id)
    node.handle(Envelope("BidAccepted", "m-2", "n-req", 0, accept))


def only_error(outbox: Recorder) -> ComputeError:
    (error,) = outbox.of(ComputeError)
    assert isinstance(error, ComputeError)
    return error


def test_staging_that_outlasts_the_execution_timeout_fails_and_frees_the_node(
    server: HTTPTestServer, staging_node: tuple[ComputeNode, Recorder]
) -> None:
    node, outbox = staging_node
    start_job(node, outbox, server.route("/drip", DRIP), timeout_s=1)
    wait_until(lambda: outbox.of(ComputeError), 1 + PROMPT_S, message="the staging timeout")
    error = only_error(outbox)
    assert error.message == "inputs not staged within the execution timeout of 1s"
    assert not error.retryable
    assert outbox.of(ExecutionStarted) == []
    wait_until(lambda: node.capacity.available() == NODE_MAX, 5, message="capacity released")


def test_a_cancel_during_staging_stops_the_download_and_frees_the_node(
    server: HTTPTestServer, staging_node: tuple[ComputeNode, Recorder]
) -> None:
    node, outbox = staging_node
    start_job(node, outbox, server.route("/drip", DRIP))
    wait_until(lambda: server.hits["/drip"] == 1, 10, message="the download")
    assert node.capacity.available().cpu == 0
    cancel = CancelExecution(execution_id="e-1", job_id="j-1", reason="stopped by the user")
    node.handle(Envelope("CancelExecution", "m-3", "n-req", 0, cancel))
    wait_until(lambda: outbox.of(ComputeError), PROMPT_S, message="the cancelled staging")
    assert only_error(outbox).message == "cancelled while staging inputs"
    assert outbox.of(ExecutionStarted) == []
    wait_until(lambda: node.capacity.available() == NODE_MAX, 5, message="capacity released")


# --- download_result (what ``bacalao job get`` does with a urlDownload result) ----------


def result_spec(url: str) -> SpecConfig:
    return SpecConfig(type="urlDownload", params={"URL": url})


def test_download_result_extracts_a_tar_gz(server: HTTPTestServer, tmp_path: Path) -> None:
    url = server.route("/r.tar.gz", Reply(body=tar_gz({"stdout": b"hi\n", "outputs/a.txt": b"a"})))
    download_result(result_spec(url), tmp_path / "job")
    assert sorted(str(p.relative_to(tmp_path / "job")) for p in (tmp_path / "job").rglob("*")) == [
        "outputs",
        "outputs/a.txt",
        "stdout",
    ]
    assert (tmp_path / "job" / "stdout").read_bytes() == b"hi\n"


def test_download_result_follows_redirects_to_the_archive(
    server: HTTPTestServer, tmp_path: Path
) -> None:
    server.route("/r.tar.gz", Reply(body=tar_gz({"stdout": b"hi\n"}), framing="chunked"))
    url = server.route("/latest", redirect("/r.tar.gz", 307))
    download_result(result_spec(url), tmp_path / "job")
    assert [p.name for p in (tmp_path / "job").iterdir()] == ["stdout"]


def test_download_result_keeps_a_plain_file(server: HTTPTestServer, tmp_path: Path) -> None:
    headers = {"Content-Disposition": 'attachment; filename="report.csv"'}
    url = server.route("/named", Reply(body=BODY, headers=headers))
    download_result(result_spec(url), tmp_path / "job")
    assert staged(tmp_path / "job") == {"report.csv": BODY}


def test_download_result_refuses_an_escaping_archive(
    server: HTTPTestServer, tmp_path: Path
) -> None:
    url = server.route("/bad.tar.gz", Reply(body=tar_gz({"../escaped": b"x"})))
    with pytest.raises(ValidationError, match="escapes"):
        download_result(result_spec(url), tmp_path / "job")
    assert not (tmp_path / "escaped").exists()
    assert staged(tmp_path / "job") == {}


def test_download_result_not_found(server: HTTPTestServer, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="404"):
        download_result(result_spec(server.url("/gone")), tmp_path / "job")
    assert staged(tmp_path / "job") == {}


def test_download_result_over_its_limit_leaves_nothing(
    server: HTTPTestServer, tmp_path: Path
) -> None:
    url = server.route("/huge", Reply(body=b"x" * 5000, framing="close"))
    with pytest.raises(Exception, match="larger than 1000 bytes"):
        download_result(result_spec(url), tmp_path / "job", max_bytes=1000)
    assert staged(tmp_path / "job") == {}


@pytest.mark.parametrize("url", ["http://x:relative/data.csv", "http://x:99999/data.csv"])
def test_an_unusable_url_is_a_job_error_not_a_retry(
    storage: URLDownloadStorage, tmp_path: Path, url: str
) -> None:
    unusable = {"Type": "urlDownload", "Params": {"URL": url}}  # kept as a peer sent it
    source = InputSource.model_construct(
        source=SourceSpec.model_validate(unusable, context=STORED), alias="", target="/inputs"
    )
    with pytest.raises(ExecutionError) as caught:
        storage.prepare(source, tmp_path)
    assert not isinstance(caught.value, RetryableExecutionError)
    assert url in str(caught.value)
