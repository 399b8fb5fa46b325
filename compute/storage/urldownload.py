"""``urlDownload`` storage: stream an http(s) URL to a file and mount its folder.

As in Bacalhau, the task sees the file under the target folder: ``<Target>/<name>``, where the
name comes from ``Content-Disposition``, else the last segment of the URL path (of the final
URL, after redirects, as Bacalhau does), else ``download``. Redirects are followed.
Connection errors, timeouts and 408/429/5xx answers are retried with exponential backoff and
end in RetryableExecutionError; other 4xx answers, too many redirects and a body over
``max_bytes`` (announced by Content-Length or counted while streaming) are ExecutionError. A
failed attempt leaves nothing behind in the staging folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from compute.executors.base import Mount
from protocol.errors import ExecutionError, RetryableExecutionError, ValidationError
from protocol.job import InputSource, SpecConfig
from protocol.results import filename_for
from protocol.specs.sources import URLDownloadParams

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024**3
RETRYABLE_STATUSES = frozenset({408, 429})
TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
USER_AGENT = "bacalao-urldownload"


class _TransientError(Exception):
    """One attempt failed in a way that another attempt may not."""


def _params(spec: SpecConfig) -> URLDownloadParams:
    try:
        return URLDownloadParams.from_wire(spec.params, prefix="Source.Params")
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

    def has_locally(self, spec: SpecConfig) -> bool:
        return False

    def size_bytes(self, spec: SpecConfig) -> int | None:
        return None

    def backoff_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.backoff_s * 2.0 ** (attempt - 1), self.max_backoff_s)

    def prepare(self, source: InputSource, staging_dir: Path) -> Mount:
        url = _params(source.source).url
        staging_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                path = self._download_once(url, staging_dir)
            except _TransientError as exc:
                last_error = str(exc)
                log.warning(
                    "event=url_download_failed url=%s attempt=%d max_attempts=%d error=%s",
                    url,
                    attempt,
                    self.max_attempts,
                    last_error,
                )
                if attempt < self.max_attempts:
                    self._sleep(self.backoff_for(attempt))
                continue
            log.info(
                "event=url_downloaded url=%s path=%s size_bytes=%d attempts=%d",
                url,
                path,
                path.stat().st_size,
                attempt,
            )
            return Mount(source=staging_dir, target=source.target, read_only=True)
        raise RetryableExecutionError(f"{last_error} (gave up after {self.max_attempts} attempts)")

    def _download_once(self, url: str, staging_dir: Path) -> Path:
        """One GET into ``staging_dir``; returns the file. Raises _TransientError to retry."""
        partial = staging_dir / ".download.partial"
        try:
            with (
                httpx.Client(
                    follow_redirects=True,
                    timeout=self.timeout,
                    headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                    transport=self._transport,
                ) as client,
                client.stream("GET", url) as response,
            ):
                _check_status(url, response)
                self._check_announced_size(url, response)
                self._stream_to(url, response, partial)
                name = filename_for(str(response.url), response.headers.get("content-disposition"))
            return partial.replace(staging_dir / (name if name != partial.name else "download"))
        except TRANSIENT_ERRORS as exc:
            raise _TransientError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise ExecutionError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise RetryableExecutionError(
                f"GET {url}: cannot write to {staging_dir}: {exc}"
            ) from None
        finally:
            partial.unlink(missing_ok=True)

    def _check_announced_size(self, url: str, response: httpx.Response) -> None:
        announced = _announced_bytes(response)
        if announced is not None and announced > self.max_bytes:
            raise ExecutionError(
                f"GET {url}: Content-Length {announced} bytes is over the limit of "
                f"{self.max_bytes} bytes"
            )

    def _stream_to(self, url: str, response: httpx.Response, path: Path) -> None:
        received_bytes = 0
        with path.open("wb") as out:
            for chunk in response.iter_bytes():
                received_bytes += len(chunk)
                if received_bytes > self.max_bytes:
                    raise ExecutionError(
                        f"GET {url}: body is over the limit of {self.max_bytes} bytes"
                    )
                out.write(chunk)
