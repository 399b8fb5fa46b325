"""The connection to one Docker daemon: made when first needed, its liveness cached briefly.

``base_url`` None means the environment's daemon, found as the docker CLI finds it
(``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``, else the local socket).

A daemon that cannot be reached is the node's trouble, not the job's: calls made inside
:func:`daemon_calls` turn connection failures into :class:`RetryableExecutionError`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors

from protocol.errors import RetryableExecutionError

log = logging.getLogger(__name__)

DEFAULT_HOST = "unix:///var/run/docker.sock"
# each running container holds three connections: one waits for its end, two follow its
# stdout and stderr (compute/executors/docker_logs.py)
MAX_POOL_SIZE = 192


class DockerDaemon:
    """One daemon. ``answers()`` pings with ``ping_timeout_s`` and remembers the answer for
    ``ping_cache_s``; ``client()`` is the shared client for real work (``api_timeout_s``
    bounds each call that does not set its own timeout)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        ping_timeout_s: float = 2.0,
        ping_cache_s: float = 5.0,
        api_timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url
        self.ping_timeout_s = ping_timeout_s
        self.ping_cache_s = ping_cache_s
        self.api_timeout_s = api_timeout_s
        self._lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._answer: tuple[float, bool] | None = None

    @property
    def where(self) -> str:
        return self.base_url or os.environ.get("DOCKER_HOST") or "the local docker socket"

    def answers(self) -> bool:
        """True when the daemon answered a ping within the last ``ping_cache_s``."""
        now = time.monotonic()
        with self._lock:
            if self._answer is not None and now - self._answer[0] < self.ping_cache_s:
                return self._answer[1]
        answer = self._ping()
        with self._lock:
            self._answer = (time.monotonic(), answer)
        return answer

    def client(self) -> docker.DockerClient:
        """The shared client; raises RetryableExecutionError when the daemon cannot be
        reached (the API version is agreed on when connecting)."""
        with self._lock:
            if self._client is None:
                path = unix_socket_path(self.base_url)
                if path is not None and not unix_socket_accepts(path, self.ping_timeout_s):
                    raise RetryableExecutionError(
                        f"docker daemon at {self.where} does not answer: nothing listens on {path}"
                    )
                try:
                    self._client = self._connect(self.api_timeout_s)
                except (docker.errors.DockerException, OSError) as exc:
                    raise RetryableExecutionError(
                        f"docker daemon at {self.where} does not answer: {exc}"
                    ) from exc
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _ping(self) -> bool:
        path = unix_socket_path(self.base_url)
        if path is not None and not unix_socket_accepts(path, self.ping_timeout_s):
            return False
        try:
            client = self._connect(self.ping_timeout_s)
        except (docker.errors.DockerException, OSError) as exc:
            log.debug("event=docker_ping_failed host=%s error=%r", self.where, str(exc))
            return False
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, OSError) as exc:
            log.debug("event=docker_ping_failed host=%s error=%r", self.where, str(exc))
            return False
        finally:
            client.close()

    def _connect(self, timeout_s: float) -> docker.DockerClient:
        if self.base_url is None:
            return docker.from_env(timeout=timeout_s, max_pool_size=MAX_POOL_SIZE)
        return docker.DockerClient(
            base_url=self.base_url,
            version="auto",
            timeout=timeout_s,
            max_pool_size=MAX_POOL_SIZE,
        )


def unix_socket_path(base_url: str | None) -> str | None:
    """The socket file of a ``unix://`` daemon URL (None for other schemes)."""
    url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    for scheme in ("unix://", "http+unix://"):
        if url.startswith(scheme):
            return url.removeprefix(scheme)
    return None


def unix_socket_accepts(path: str, timeout_s: float) -> bool:
    """Whether something listens on the socket file. Checked by hand before the SDK
    connects, because docker-py leaks its socket when a unix connect fails."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


@contextmanager
def daemon_calls(daemon: DockerDaemon, doing: str) -> Iterator[None]:
    """Turn a daemon that stops answering (requests' errors are OSErrors) into a
    RetryableExecutionError saying what we were ``doing``."""
    try:
        yield
    except OSError as exc:
        raise RetryableExecutionError(
            f"docker daemon at {daemon.where} stopped answering while {doing}: {exc}"
        ) from exc
