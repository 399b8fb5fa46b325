"""Serve an ASGI app with uvicorn on a background thread: ``start()`` returns the bound port
(port 0 picks a free one), ``stop()`` shuts it down and joins the thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from socket import socket
from typing import Any

import uvicorn

log = logging.getLogger("bacalao.api")

DEFAULT_START_TIMEOUT_S = 10.0
DEFAULT_STOP_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 5


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
    """One uvicorn server for ``app`` on ``host:port``, run on a daemon thread."""

    def __init__(
        self,
        app: Callable[..., Any],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self._start_timeout_s = start_timeout_s
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            log_config=None,
            ws="none",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
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
            target=self._serve, args=(server,), name=f"api-{self.host}:{self.port}"
        )
        thread.daemon = True
        self._server, self._thread = server, thread
        thread.start()
        if not server.startup_done.wait(self._start_timeout_s):
            self.stop()
            raise RuntimeError(
                f"the API on {self.host}:{self.port} did not start in {self._start_timeout_s}s"
            )
        if not server.started or not server.servers:
            self.stop()
            raise RuntimeError(
                f"the API cannot listen on {self.host}:{self.port} (see the log for why)"
            )
        self.port = int(server.servers[0].sockets[0].getsockname()[1])
        log.info("event=api_started host=%s port=%d", self.host, self.port)
        return self.port

    def _serve(self, server: _Server) -> None:
        try:
            server.run()
        except SystemExit:
            # uvicorn exits when it cannot bind (after logging why); start() reports it.
            log.debug("event=api_exited host=%s port=%d", self.host, self.port)

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Ask the server to exit and wait for its thread; safe to call more than once."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("event=api_stop_timeout host=%s port=%d", self.host, self.port)
            return
        log.info("event=api_stopped host=%s port=%d", self.host, self.port)
