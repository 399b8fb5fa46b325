"""An outbound link to one peer: a bounded send buffer drained by one writer thread.

The writer connects (reconnecting with exponential backoff), sends a fresh HELLO first on
every connection, then the buffered frames in order. A frame leaves the buffer only once
``sendall`` returned, so a broken connection resends it on the next one: one link per peer
and one writer keep frames from this node in the order they were sent.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from protocol.errors import TransportError

log = logging.getLogger("bacalao.peer")


class BufferFullError(TransportError):
    """The peer is not taking frames and this link's buffer is full."""


class PeerLink:
    def __init__(
        self,
        address: str,
        hello: Callable[[], bytes],
        *,
        max_frames: int,
        connect_timeout_s: float,
        backoff_s: float,
        backoff_max_s: float,
    ) -> None:
        self.address = address
        self._hello = hello
        self._max_frames = max_frames
        self._connect_timeout_s = connect_timeout_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._frames: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._closed = threading.Event()
        self._sock: socket.socket | None = None
        self.connected = False
        self.local_address: tuple[str, int] | None = None
        self.down_since: float | None = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"peer-{address}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, frame: bytes) -> None:
        with self._cond:
            if self._closing:
                raise TransportError(f"link to peer {self.address} is closed")
            if len(self._frames) >= self._max_frames:
                raise BufferFullError(
                    f"peer {self.address} is not taking messages "
                    f"({len(self._frames)} frames waiting)"
                )
            self._frames.append(frame)
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._frames)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._closed.set()
            self._cond.notify_all()
            sock = self._sock
        if sock is not None:
            shutdown_socket(sock)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # -- writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_s
        while not self._closing:
            try:
                sock = socket.create_connection(
                    _split(self.address), timeout=self._connect_timeout_s
                )
            except OSError as exc:
                log.debug("event=peer_connect_failed peer=%s error=%r", self.address, exc)
                self._pause(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                if self._closing:
                    sock.close()
                    return
                self._sock = sock
                self.local_address = sock.getsockname()[:2]
            try:
                sock.sendall(self._hello())
                self.connected, self.down_since = True, None
                log.info("event=peer_connected peer=%s", self.address)
                backoff = self._backoff_s
                self._drain(sock)
            except OSError as exc:
                if not self._closing:
                    log.info("event=peer_disconnected peer=%s error=%r", self.address, exc)
            finally:
                self.connected = False
                self.down_since = self.down_since or time.monotonic()
                with self._cond:
                    self._sock = None
                sock.close()
            self._pause(backoff)

    def _drain(self, sock: socket.socket) -> None:
        while True:
            with self._cond:
                while not self._frames and not self._closing:
                    self._cond.wait(0.2)
                    _check_open(sock)
                if self._closing:
                    return
                frame = self._frames[0]
            _check_open(sock)
            sock.sendall(frame)
            with self._cond:
                if self._frames and self._frames[0] is frame:
                    self._frames.popleft()

    def _pause(self, seconds: float) -> None:
        self._closed.wait(seconds)


def _check_open(sock: socket.socket) -> None:
    """Peers never write on our outbound connection, so readable means closed: notice it
    before the next frame goes into a dead socket's buffer and is lost."""
    readable, _, _ = select.select([sock], [], [], 0)
    if readable and not sock.recv(1, socket.MSG_PEEK):
        raise ConnectionError("peer closed the connection")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def shutdown_socket(sock: socket.socket) -> None:
    """Unblock whoever waits on ``sock``; an already closed socket is fine."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
