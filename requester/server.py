"""Serve an ASGI app with uvicorn on a background thread: ``start()`` returns the bound port
(port 0 picks a free one), ``stop()`` shuts it down and joins the thread.

Each server has a ``name`` saying what it serves (``api``, ``results_server``): its log
events and errors carry it, so a node's results server never reads like a second API."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from socket import socket
from typing import Any

import uvicorn

from requester.tls import TLSFiles

log = logging.getLogger("bacalao.api")

DEFAULT_START_TIMEOUT_S = 10.0
DEFAULT_STOP_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 5
# How long an idle keep-alive connection stays open. Well past what clients keep one for
# (cli.client.KEEPALIVE_EXPIRY_S, httpx's 5 s default): when both sides give up at the same
# moment, a client can send a request on a connection the server is closing and read
# "Server disconnected without sending a response".
KEEP_ALIVE_S = 30


class _Server(uvicorn.Server):
    """uvicorn's server, telling another thread when its startup is over (bound or failed)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = threading.Event()

    async def startup(self, sockets: list[socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()


class APIServer:
    """One uvicorn server for ``app`` on ``host:port``, run on a daemon thread.

    ``sock``, when given, is a socket already listening (the caller chose its port, e.g.
    falling back from a taken default): the server serves on it, owns it, and closes it
    when it stops; ``port`` is then the socket's. ``tls``, when given, is the certificate
    and key it serves HTTPS with."""

    def __init__(
        self,
        app: Callable[..., Any],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "api",
        sock: socket | None = None,
        tls: TLSFiles | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.host = host
        self.port = int(sock.getsockname()[1]) if sock is not None else port
        self._sock = sock
        self._start_timeout_s = start_timeout_s
        self.scheme = "https" if tls is not None else "http"
        self._config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            log_config=None,
            ws="none",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            timeout_keep_alive=KEEP_ALIVE_S,
            ssl_certfile=None if tls is None else str(tls.cert),
            ssl_keyfile=None if tls is None else str(tls.key),
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> int:
        """Serve, and return the port once the socket listens; RuntimeError if it cannot."""
        if self._server is not None:
            raise RuntimeError("this APIServer was already started")
        server = _Server(self._config)
        thread = threading.Thread(
            target=self._serve, args=(server,), name=f"{self.name}-{self.host}:{self.port}"
        )
        thread.daemon = True
        self._server, self._thread = server, thread
        thread.start()
        if not server.startup_done.wait(self._start_timeout_s):
            self.stop()
            raise RuntimeError(
                f"the {self.name} server on {self.host}:{self.port} did not start in "
                f"{self._start_timeout_s}s"
            )
        if not server.started or not server.servers:
            self.stop()
            raise RuntimeError(
                f"the {self.name} server cannot listen on {self.host}:{self.port} "
                "(see the log for why)"
            )
        self.port = int(server.servers[0].sockets[0].getsockname()[1])
        log.info(
            "event=%s_listening host=%s port=%d scheme=%s",
            self.name,
            self.host,
            self.port,
            self.scheme,
        )
        return self.port

    def _serve(self, server: _Server) -> None:
        try:
            server.run(sockets=None if self._sock is None else [self._sock])
        except SystemExit:
            # uvicorn exits when it cannot bind (after logging why); start() reports it.
            log.debug("event=%s_exited host=%s port=%d", self.name, self.host, self.port)

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Ask the server to exit and wait for its thread; safe to call more than once."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            if self._sock is not None:  # never started: the socket is still ours to close
                self._sock.close()
            return
        server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("event=%s_stop_timeout host=%s port=%d", self.name, self.host, self.port)
            return
        if self._sock is not None:  # uvicorn closed it unless it never served on it
            self._sock.close()
        log.info("event=%s_stopped host=%s port=%d", self.name, self.host, self.port)
