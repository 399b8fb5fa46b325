"""``urlDownload`` storage: stream an http(s) URL to a file and mount its folder.

As in Bacalhau, the task sees the file under the target folder: ``<Target>/<name>``, where the
name comes from ``Content-Disposition``, else the last segment of the URL path (of the final
URL, after redirects, as Bacalhau does), else ``download``. Redirects are followed.
Connection errors, timeouts and 408/429/5xx answers are retried with exponential backoff and
end in RetryableExecutionError; other 4xx answers, too many redirects and a body over
``max_bytes`` (announced by Content-Length or counted while streaming) are ExecutionError. A
failed attempt leaves nothing behind in the staging folder.

The read timeout bounds each read, not the download: a server that drips a byte at a time
never trips it. So the runner hands :meth:`URLDownloadStorage.prepare_interruptible` the
staging stop switch (thrown by the execution's deadline or a cancel), and the download then
ends at once, wherever it is: the connection's socket is shut down, which wakes a read blocked
on a stalled server, and no retry follows.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from compute.executors.base import Mount
from compute.executors.interrupts import RunControl
from protocol.errors import ExecutionError, RetryableExecutionError, ValidationError
from protocol.job import InputSource, SourceSpec
from protocol.results import filename_for
from protocol.specs.sources import URLDownloadParams

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024**3
RETRYABLE_STATUSES = frozenset({408, 429})
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
USER_AGENT = "bacalao-urldownload"


class _TransientError(Exception):
    """One attempt failed in a way that another attempt may not."""


class _StoppedError(Exception):
    """The stop switch was thrown: end the download, do not retry."""


class _Interrupter:
    """Shuts down the sockets of one download when its stop switch is thrown, so a read
    blocked on a stalled or dripping server returns at once. It learns each connection's
    socket from httpcore's ``trace`` extension as the connection is made (every redirect hop
    too). Without a switch it never stops."""

    def __init__(self, control: RunControl | None) -> None:
        self._control = control
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._shut = False
        if control is not None:
            control.on_stop(self._shut_all)

    @property
    def stopped(self) -> bool:
        return self._control is not None and self._control.reason is not None

    @property
    def reason(self) -> str:
        return str(self._control.reason) if self._control is not None else ""

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        # The TCP socket, and for https the TLS socket that takes it over (wrapping detaches
        # the first: shutting that one down would no longer reach the connection).
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            shut = self._shut
        if shut:
            _shut_down(sock)

    def _shut_all(self) -> None:
        with self._lock:
            self._shut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket (whose override would drop its TLS
    # state under the reading thread): both directions, so a blocked recv returns b"".
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _params(spec: SourceSpec) -> URLDownloadParams:
    try:
        return spec.params_as(URLDownloadParams, "Source")
    except ValidationError as exc:
        raise ExecutionError(f"urlDownload: {exc}") from None


def _check_status(url: str, response: httpx.Response) -> None:
    if not response.is_error:
        return
    message = f"GET {url}: {response.status_code} {response.reason_phrase}"
    if response.history:
        message += f" (redirected to {response.url})"
    if response.is_server_error or response.status_code in RETRYABLE_STATUSES:
        raise _TransientError(message)
    raise ExecutionError(message)


def _announced_bytes(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


class URLDownloadStorage:
    """Downloads http(s) URLs into the staging folder, with limits, timeouts and retries."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        max_attempts: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_bytes = max_bytes
        self.timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._transport = transport

    @property
    def type(self) -> str:
        return "urlDownload"

    def is_installed(self) -> bool:
        return True

    def has_locally(self, spec: SourceSpec) -> bool:
        return False

    def size_bytes(self, spec: SourceSpec) -> int | None:
        return None

    def backoff_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.backoff_s * 2.0 ** (attempt - 1), self.max_backoff_s)

    def prepare(self, source: InputSource, staging_dir: Path) -> Mount:
        return self._prepare(source, staging_dir, None)

    def prepare_interruptible(
        self, source: InputSource, staging_dir: Path, control: RunControl
    ) -> Mount:
        """:meth:`prepare`, ended at once (ExecutionError, no retry) when ``control`` is
        thrown; backoff waits on it too."""
        return self._prepare(source, staging_dir, control)

    def _prepare(self, source: InputSource, staging_dir: Path, control: RunControl | None) -> Mount:
        url = _params(source.source).url
        staging_dir.mkdir(parents=True, exist_ok=True)
        interrupter = _Interrupter(control)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=lambda state: self.backoff_for(state.attempt_number),
            retry=retry_if_exception_type(_TransientError),
            sleep=lambda seconds: self._pause(seconds, interrupter, control),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    path = self._attempt(url, staging_dir, interrupter, attempt.retry_state)
        except _StoppedError:
            log.info("event=url_download_stopped url=%s reason=%s", url, interrupter.reason)
            raise ExecutionError(f"GET {url}: download stopped ({interrupter.reason})") from None
        except _TransientError as exc:
            raise RetryableExecutionError(
                f"{exc} (gave up after {self.max_attempts} attempts)"
            ) from None
        log.info(
            "event=url_downloaded url=%s path=%s size_bytes=%d attempts=%d",
            url,
            path,
            path.stat().st_size,
            attempt.retry_state.attempt_number,
        )
        return Mount(source=staging_dir, target=source.target, read_only=True)

    def _attempt(
        self, url: str, staging_dir: Path, interrupter: _Interrupter, state: RetryCallState
    ) -> Path:
        try:
            return self._download_once(url, staging_dir, interrupter)
        except _TransientError as exc:
            log.warning(
                "event=url_download_failed url=%s attempt=%d max_attempts=%d error=%s",
                url,
                state.attempt_number,
                self.max_attempts,
                exc,
            )
            raise

    def _pause(self, seconds: float, interrupter: _Interrupter, control: RunControl | None) -> None:
        """The backoff between attempts; with a stop switch, it ends when that is thrown."""
        if control is None:
            self._sleep(seconds)
        else:
            control.wait(seconds)
        if interrupter.stopped:
            raise _StoppedError

    def _download_once(self, url: str, staging_dir: Path, interrupter: _Interrupter) -> Path:
        """One GET into ``staging_dir``; returns the file. Raises _TransientError to retry, and
        _StoppedError once stopped (whatever the aborted transfer raised)."""
        partial = staging_dir / ".download.partial"
        try:
            if interrupter.stopped:
                raise _StoppedError
            return self._get(url, staging_dir, partial, interrupter)
        except Exception:
            if interrupter.stopped:
                raise _StoppedError from None
            raise
        finally:
            partial.unlink(missing_ok=True)

    def _get(self, url: str, staging_dir: Path, partial: Path, interrupter: _Interrupter) -> Path:
        try:
            with (
                httpx.Client(
                    follow_redirects=True,
                    timeout=self.timeout,
                    headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                    transport=self._transport,
                ) as client,
                client.stream("GET", url, extensions={"trace": interrupter.trace}) as response,
            ):
                _check_status(url, response)
                self._check_announced_size(url, response)
                self._stream_to(url, response, partial, interrupter)
                if interrupter.stopped:  # a body framed by closing "ends" when its socket is shut
                    raise _StoppedError
                name = filename_for(str(response.url), response.headers.get("content-disposition"))
            return partial.replace(staging_dir / (name if name != partial.name else "download"))
        except TRANSIENT_ERRORS as exc:
            raise _TransientError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ExecutionError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise RetryableExecutionError(
                f"GET {url}: cannot write to {staging_dir}: {exc}"
            ) from None

    def _check_announced_size(self, url: str, response: httpx.Response) -> None:
        announced = _announced_bytes(response)
        if announced is not None and announced > self.max_bytes:
            raise ExecutionError(
                f"GET {url}: Content-Length {announced} bytes is over the limit of "
                f"{self.max_bytes} bytes"
            )

    def _stream_to(
        self, url: str, response: httpx.Response, path: Path, interrupter: _Interrupter
    ) -> None:
        received_bytes = 0
        with path.open("wb") as out:
            for chunk in response.iter_bytes():
                if interrupter.stopped:
                    raise _StoppedError
                received_bytes += len(chunk)
                if received_bytes > self.max_bytes:
                    raise ExecutionError(
                        f"GET {url}: body is over the limit of {self.max_bytes} bytes"
                    )
                out.write(chunk)
