"""Idle keep-alive connections: the client lets one go before the API server closes it.

When both give up on an idle connection at the same moment, the client can send a request
on a connection the server is closing and read "Server disconnected without sending a
response" (seen in CI, 12 jobs submitted from 8 threads after a few seconds' pause)."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from cli.client import KEEPALIVE_EXPIRY_S, APIClient
from requester.server import KEEP_ALIVE_S, APIServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _app() -> Any:
    """An ASGI app answering ``ok`` to every request."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.fixture
def served() -> Iterator[int]:
    server = APIServer(_app(), "127.0.0.1", 0)
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"ok"):
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    return data


def test_the_client_lets_go_of_an_idle_connection_long_before_the_server() -> None:
    assert KEEPALIVE_EXPIRY_S * 5 <= KEEP_ALIVE_S
    with APIClient() as client:
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == KEEPALIVE_EXPIRY_S


def test_the_server_keeps_an_idle_connection_past_the_clients_expiry(
    served: int,
) -> None:
    port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(REQUEST)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        # the server closing it would make the socket readable (EOF) within this deadline
        readable, _, _ = select.select([sock], [], [], KEEPALIVE_EXPIRY_S + 1.0)
        assert not readable, "the server closed an idle connection the client may still use"
        sock.sendall(REQUEST)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
