"""A real HTTP server on a free loopback port, answering the routes a test defines.

Stdlib ``ThreadingHTTPServer`` on a thread: each route maps a path to the replies it gives, one
per request (the last one repeats), so "500, then 200" is ``route("/x", Reply(500), Reply())``.
A reply can frame its body by Content-Length, chunked transfer encoding, or by closing the
connection (no length at all), and can stall before its headers or part-way through its body
until the server closes, which is how tests provoke read timeouts, or drip its body (a pause
before each chunk), which no read timeout catches::

    with http_server() as server:
        server.route("/data.csv", Reply(body=b"a,b\\n"))
        server.route("/old", redirect("/data.csv", 301))
        url = server.url("/old")
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Framing = Literal["length", "chunked", "close"]
MAX_STALL_S = 30.0


@dataclass(frozen=True)
class Reply:
    """One answer. ``stall_after_bytes``: send that much of the body, then stall;
    ``stall_before_headers``: send nothing at all until the server closes;
    ``drip_interval_s``: wait that long before each chunk of the body."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    framing: Framing = "length"
    chunk_bytes: int = 4096
    stall_before_headers: bool = False
    stall_after_bytes: int | None = None
    drip_interval_s: float = 0.0


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status=status, headers={"Location": location})


@dataclass
class _Routes:
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    closing: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, path: str) -> Reply | None:
        with self.lock:
            self.hits[path] += 1
            replies = self.replies.get(path)
            if not replies:
                return None
            return replies[min(self.hits[path], len(replies)) - 1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: _Routes

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        self.close_connection = True
        path = self.path.split("?", 1)[0]
        reply = self.routes.next_reply(path) or Reply(status=404, body=b"no such route")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(reply, send_body)

    def _send(self, reply: Reply, send_body: bool) -> None:
        if reply.stall_before_headers:
            self.routes.closing.wait(MAX_STALL_S)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.framing == "length":
            self.send_header("Content-Length", str(len(reply.body)))
        elif reply.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self._send_body(reply)

    def _send_body(self, reply: Reply) -> None:
        body = reply.body
        if reply.stall_after_bytes is not None:
            body = body[: reply.stall_after_bytes]
        for start in range(0, len(body), reply.chunk_bytes):
            if reply.drip_interval_s and self.routes.closing.wait(reply.drip_interval_s):
                return
            chunk = body[start : start + reply.chunk_bytes]
            if reply.framing == "chunked":
                chunk = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            self.wfile.write(chunk)
        self.wfile.flush()
        if reply.stall_after_bytes is not None:
            self.routes.closing.wait(MAX_STALL_S)
            return
        if reply.framing == "chunked":
            self.wfile.write(b"0\r\n\r\n")


class HTTPTestServer:
    """What a test sees: the base URL, its routes, and how often each path was asked for."""

    def __init__(self, base_url: str, routes: _Routes) -> None:
        self.base_url = base_url
        self._routes = routes

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, *replies: Reply) -> str:
        """Answer ``path`` with ``replies`` in turn (the last one repeats); returns its URL."""
        with self._routes.lock:
            self._routes.replies[path] = list(replies or [Reply()])
        return self.url(path)

    @property
    def hits(self) -> Counter[str]:
        with self._routes.lock:
            return Counter(self._routes.hits)


@contextlib.contextmanager
def http_server(tls: ssl.SSLContext | None = None) -> Iterator[HTTPTestServer]:
    """Serve on 127.0.0.1 (a free port) until the block ends; stalled replies end then too.
    With ``tls`` (a server context), over https."""
    routes = _Routes()
    handler = type("BoundHandler", (_Handler,), {"routes": routes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="test-http")
    thread.start()
    try:
        yield HTTPTestServer(f"{scheme}://127.0.0.1:{httpd.server_address[1]}", routes)
    finally:
        routes.closing.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
