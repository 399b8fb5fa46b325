"""A unix socket that forwards to another one until :meth:`UnixSocketProxy.cut` is called;
then every connection through it breaks at once, as when a server vanishes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

CHUNK_BYTES = 65536


class UnixSocketProxy:
    def __init__(self, path: Path, upstream: Path) -> None:
        self.path = path
        self.upstream = upstream
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._cut = False

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> UnixSocketProxy:
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        self._spawn(self._accept_loop)
        return self

    def cut(self) -> None:
        """Stop listening and break every open connection."""
        with self._lock:
            self._cut = True
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.path.unlink(missing_ok=True)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.connect(str(self.upstream))
            except OSError:
                client.close()
                server.close()
                continue
            with self._lock:
                if self._cut:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
                self._spawn(self._pump, client, server)
                self._spawn(self._pump, server, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK_BYTES):
                sink.sendall(data)
        except OSError:
            return
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            return
