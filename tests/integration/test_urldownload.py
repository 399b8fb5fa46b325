"""``urlDownload`` storage and ``download_result`` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import re
import socket
import tarfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from compute.storage.urldownload import URLDownloadStorage
from protocol.errors import (
    ExecutionError,
    NotFoundError,
    RetryableExecutionError,
    ValidationError,
)
from protocol.job import InputSource, SpecConfig
from protocol.results import download_result

pytestmark = pytest.mark.integration

BODY = b"id,value\n1,one\n2,two\n"
LIMIT_BYTES = 10_000


@dataclass
class ServerState:
    """What the handler serves and what it saw; one per test."""

    hits: Counter[str] = field(default_factory=Counter)
    failures_before_success: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    files: dict[str, bytes] = field(default_factory=dict)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ServerState

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def chunked(self, chunk: bytes, count: int) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for _ in range(count):
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        self.close_connection = True
        path = self.path.split("?")[0]
        self.state.hits[path] += 1
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.route(path)

    def route(self, path: str) -> None:
        routes: dict[str, Callable[[], None]] = {
            "/files/data.csv": lambda: self.reply(200, BODY),
            "/named": lambda: self.reply(
                200, BODY, {"Content-Disposition": 'attachment; filename="report.csv"'}
            ),
            "/redirect": lambda: self.reply(302, headers={"Location": "/files/data.csv"}),
            "/announced-big": lambda: self.reply(200, b"x" * (LIMIT_BYTES + 1)),
            "/chunked-small": lambda: self.chunked(b"y" * 100, 5),
            "/chunked-big": lambda: self.chunked(b"z" * 1000, LIMIT_BYTES // 1000 + 5),
            "/flaky": self.flaky,
            "/down": lambda: self.reply(503, b"down"),
            "/hang": self.hang,
        }
        if path in routes:
            routes[path]()
        elif path in self.state.files:
            self.reply(200, self.state.files[path])
        else:
            self.reply(404, b"not found")

    def flaky(self) -> None:
        if self.state.hits["/flaky"] <= self.state.failures_before_success:
            self.reply(500, b"try again")
        else:
            self.reply(200, BODY)

    def hang(self) -> None:
        self.state.release.wait(timeout=60)


@dataclass
class Server:
    base_url: str
    state: ServerState


@pytest.fixture
def server() -> Iterator[Server]:
    state = ServerState()
    handler = type("BoundHandler", (Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", state)
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def url_source(url: str, target: str = "/inputs") -> InputSource:
    return InputSource.model_validate(
        {"Source": {"Type": "urlDownload", "Params": {"URL": url}}, "Target": target}
    )


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def storage(waits: list[float]) -> URLDownloadStorage:
    return URLDownloadStorage(max_bytes=LIMIT_BYTES, max_attempts=3, sleep=waits.append)


def test_download_into_target_folder_named_after_url(
    server: Server, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    mount = storage.prepare(url_source(f"{server.base_url}/files/data.csv?v=2"), tmp_path)
    assert mount.source == tmp_path
    assert mount.target == "/inputs"
    assert mount.read_only
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]
    assert (tmp_path / "data.csv").read_bytes() == BODY


def test_filename_from_content_disposition(
    server: Server, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    storage.prepare(url_source(f"{server.base_url}/named"), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_redirect_is_followed(server: Server, storage: URLDownloadStorage, tmp_path: Path) -> None:
    storage.prepare(url_source(f"{server.base_url}/redirect"), tmp_path)
    assert (tmp_path / "redirect").read_bytes() == BODY
    assert server.state.hits == Counter({"/redirect": 1, "/files/data.csv": 1})


def test_not_found_is_not_retried(
    server: Server, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    url = f"{server.base_url}/missing"
    with pytest.raises(ExecutionError, match=re.escape(f"GET {url}: 404 Not Found")) as caught:
        storage.prepare(url_source(url), tmp_path)
    assert not isinstance(caught.value, RetryableExecutionError)
    assert server.state.hits["/missing"] == 1
    assert list(tmp_path.iterdir()) == []


def test_content_length_over_limit_is_refused_up_front(
    server: Server, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionError, match="Content-Length 10001 bytes is over the limit"):
        storage.prepare(url_source(f"{server.base_url}/announced-big"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_chunked_body_under_limit_is_downloaded(
    server: Server, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    storage.prepare(url_source(f"{server.base_url}/chunked-small"), tmp_path)
    assert (tmp_path / "chunked-small").read_bytes() == b"y" * 500


def test_chunked_body_over_limit_is_refused_while_streaming(
    server: Server, storage: URLDownloadStorage, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionError, match="body is over the limit of 10000 bytes"):
        storage.prepare(url_source(f"{server.base_url}/chunked-big"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_server_errors_are_retried_with_backoff(
    server: Server, storage: URLDownloadStorage, tmp_path: Path, waits: list[float]
) -> None:
    server.state.failures_before_success = 2
    storage.prepare(url_source(f"{server.base_url}/flaky"), tmp_path)
    assert (tmp_path / "flaky").read_bytes() == BODY
    assert server.state.hits["/flaky"] == 3
    assert waits == [1.0, 2.0]


def test_retries_exhausted_is_retryable(
    server: Server, storage: URLDownloadStorage, tmp_path: Path, waits: list[float]
) -> None:
    with pytest.raises(
        RetryableExecutionError, match=r"503 Service Unavailable \(gave up after 3 attempts\)"
    ):
        storage.prepare(url_source(f"{server.base_url}/down"), tmp_path)
    assert server.state.hits["/down"] == 3
    assert waits == [1.0, 2.0]
    assert list(tmp_path.iterdir()) == []


def test_read_timeout_is_retried_then_retryable(server: Server, tmp_path: Path) -> None:
    waits: list[float] = []
    storage = URLDownloadStorage(read_timeout_s=0.2, max_attempts=2, sleep=waits.append)
    with pytest.raises(RetryableExecutionError, match="ReadTimeout"):
        storage.prepare(url_source(f"{server.base_url}/hang"), tmp_path)
    assert server.state.hits["/hang"] == 2
    assert waits == [1.0]


def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = URLDownloadStorage(max_attempts=2, sleep=lambda _s: None)
    with pytest.raises(RetryableExecutionError, match="ConnectError"):
        storage.prepare(url_source(f"http://127.0.0.1:{port}/x"), tmp_path)


# --- download_result (what ``bacalao job get`` does with a urlDownload result) ----------


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def result_spec(url: str) -> SpecConfig:
    return SpecConfig(type="urlDownload", params={"URL": url})


def test_download_result_extracts_a_tar_gz(server: Server, tmp_path: Path) -> None:
    server.state.files["/r.tar.gz"] = tar_gz({"stdout": b"hi\n", "outputs/a.txt": b"a"})
    download_result(result_spec(f"{server.base_url}/r.tar.gz"), tmp_path / "job")
    assert sorted(str(p.relative_to(tmp_path / "job")) for p in (tmp_path / "job").rglob("*")) == [
        "outputs",
        "outputs/a.txt",
        "stdout",
    ]
    assert (tmp_path / "job" / "stdout").read_bytes() == b"hi\n"


def test_download_result_keeps_a_plain_file(server: Server, tmp_path: Path) -> None:
    download_result(result_spec(f"{server.base_url}/named"), tmp_path / "job")
    assert [p.name for p in (tmp_path / "job").iterdir()] == ["report.csv"]


def test_download_result_refuses_an_escaping_archive(server: Server, tmp_path: Path) -> None:
    server.state.files["/bad.tar.gz"] = tar_gz({"../escaped": b"x"})
    with pytest.raises(ValidationError, match="escapes"):
        download_result(result_spec(f"{server.base_url}/bad.tar.gz"), tmp_path / "job")
    assert not (tmp_path / "escaped").exists()
    assert list((tmp_path / "job").iterdir()) == []


def test_download_result_not_found(server: Server, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="404"):
        download_result(result_spec(f"{server.base_url}/gone"), tmp_path / "job")
