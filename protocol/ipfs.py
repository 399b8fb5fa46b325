"""An IPFS node's RPC API (Kubo's ``/api/v0``, also served by js-ipfs): check it answers,
stat, pin status, add a folder, get a CID into a folder.

Shared by the ``ipfs`` storage provider, the ``ipfs`` publisher and ``download_result``.
``ipfshttpclient`` (imported on first use) adds folders, stats and lists pins; ``get`` streams
the API's tar with httpx and unpacks it member by member with tarfile's ``data`` filter,
because ipfshttpclient's own ``get`` extracts without any filter. ipfshttpclient's
``connect()`` refuses every daemon newer than Kubo 0.8, so its ``Client`` is built directly.

API addresses are multiaddrs as Bacalhau takes them (``/ip4/127.0.0.1/tcp/5001``, optionally
ending in ``/http`` or ``/https``; ``/ip6``, ``/dns``, ``/dns4``, ``/dns6`` too) or plain
``http(s)://host:port`` URLs.

Every call that may wait for the network carries the RPC's ``timeout`` argument, so the daemon
gives up on a CID it cannot find instead of searching for ever. Errors:

- ValidationError  a malformed CID or API address
- NotFoundError    the CID was not found in time, or is neither a file nor a directory
- TransportError   the API cannot be reached or fails (worth another try)
"""

from __future__ import annotations

import logging
import re
import shutil
import tarfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast
from urllib.parse import urlparse

import httpx

from protocol.errors import NotFoundError, TransportError, ValidationError

log = logging.getLogger(__name__)

DEFAULT_API = "/ip4/127.0.0.1/tcp/5001"
API_ENV_VAR = "BACALAO_IPFS_API"
CLIENT_MARGIN_S = 5.0
TIMEOUT_HINTS = ("timed out", "deadline exceeded")
MISSING_HINTS = ("not found", "no link named")
_MULTIADDR = re.compile(
    r"^/(?P<proto>ip4|ip6|dns|dns4|dns6)/(?P<host>[^/]+)/tcp/(?P<port>\d+)"
    r"(?:/(?P<scheme>https?))?/?$"
)

# ipfshttpclient 0.7 still passes urllib3 1.x's ``strict`` argument; urllib3 2 warns about it.
warnings.filterwarnings(
    "ignore", message="The 'strict' parameter is no longer needed", category=FutureWarning
)


@dataclass(frozen=True)
class APIAddress:
    """One IPFS RPC API endpoint, as a multiaddr (for ipfshttpclient) and a base URL."""

    multiaddr: str
    url: str


def parse_api_address(text: str, field: str = "ipfs-connect") -> APIAddress:
    text = text.strip()
    found = _MULTIADDR.match(text)
    if found:
        proto, host, port = found["proto"], found["host"], int(found["port"])
        scheme = found["scheme"] or "http"
    else:
        parsed = urlparse(text)
        if (
            parsed.scheme not in ("http", "https")
            or not parsed.hostname
            or parsed.path
            not in (
                "",
                "/",
            )
        ):
            raise ValidationError(
                field,
                f"{text!r} is not an IPFS API address (/ip4/HOST/tcp/PORT or http://HOST:PORT)",
            )
        scheme, host = parsed.scheme, parsed.hostname
        port = parsed.port or (443 if scheme == "https" else 80)
        proto = "ip6" if ":" in host else ("ip4" if re.fullmatch(r"[\d.]+", host) else "dns")
    if not 0 < port < 65536:
        raise ValidationError(field, f"{text!r}: port {port} is out of range")
    url_host = f"[{host}]" if ":" in host else host
    return APIAddress(f"/{proto}/{host}/tcp/{port}/{scheme}", f"{scheme}://{url_host}:{port}")


def check_cid(text: str, field: str = "CID") -> str:
    """``text`` if it is a CID (v0 or v1, any multibase); ValidationError otherwise."""
    from cid import make_cid

    value = text.strip()
    if "/" in value:
        raise ValidationError(field, f"{value!r} is not a CID (a bare CID, not a path)")
    try:
        make_cid(value)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(field, f"{value!r} is not a CID ({exc})") from None
    return value


def http_client(api: str, timeout_s: float = 30.0) -> Any:
    """An ``ipfshttpclient.Client`` on ``api`` (a multiaddr)."""
    import ipfshttpclient

    return ipfshttpclient.Client(api, timeout=timeout_s)


def _duration(timeout_s: float) -> str:
    """The RPC's ``timeout`` argument (a Go duration, also understood by js-ipfs)."""
    return f"{max(1, round(timeout_s * 1000))}ms"


@dataclass(frozen=True)
class Stat:
    kind: str  # "file" or "directory"
    cumulative_size_bytes: int


class IPFSClient:
    """One IPFS API; every method opens its own connection, so one instance serves threads."""

    def __init__(self, api: str | APIAddress, clock: Callable[[], float] = time.monotonic) -> None:
        self.address = api if isinstance(api, APIAddress) else parse_api_address(api)
        self._clock = clock
        self._lock = threading.Lock()
        self._answered: tuple[float, bool] | None = None

    def __repr__(self) -> str:
        return f"IPFSClient({self.address.url})"

    def _client(self, timeout_s: float) -> Any:
        return http_client(self.address.multiaddr, timeout_s + CLIENT_MARGIN_S)

    def _failed(self, exc: Exception, what: str, timeout_s: float) -> Exception:
        """Our error for an ipfshttpclient or httpx failure of ``what``."""
        import ipfshttpclient.exceptions as ipfs_errors

        if isinstance(exc, ipfs_errors.ErrorResponse):
            return self._server_error(str(exc), what, timeout_s)
        if isinstance(exc, ipfs_errors.ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            return TransportError(f"cannot reach the IPFS API at {self.address.url}: {exc}")
        if isinstance(exc, ipfs_errors.TimeoutError | httpx.TimeoutException):
            return TransportError(
                f"the IPFS API at {self.address.url} did not answer {what} in time: {exc}"
            )
        return TransportError(f"IPFS API at {self.address.url}: {what}: {exc}")

    def _server_error(self, message: str, what: str, timeout_s: float) -> Exception:
        lowered = message.lower()
        if any(hint in lowered for hint in TIMEOUT_HINTS):
            return NotFoundError(
                f"{what}: not found within {timeout_s:g}s by the IPFS node at "
                f"{self.address.url} ({message})"
            )
        if any(hint in lowered for hint in MISSING_HINTS):
            return NotFoundError(f"{what}: {message} (IPFS node at {self.address.url})")
        return TransportError(f"IPFS API at {self.address.url}: {what}: {message}")

    def ping(self, timeout_s: float = 2.0) -> None:
        """Raise TransportError unless the API answers ``id`` within ``timeout_s``."""
        try:
            response = httpx.post(f"{self.address.url}/api/v0/id", timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise TransportError(f"IPFS API at {self.address.url} does not answer: {exc}") from None
        if response.is_error:
            raise TransportError(
                f"IPFS API at {self.address.url} answers id with {response.status_code}: "
                f"{_error_message(response)}"
            )

    def answers(self, timeout_s: float = 2.0, ttl_s: float = 10.0) -> bool:
        """Whether the API answered ``id`` within ``timeout_s``, asked again after ``ttl_s``."""
        now = self._clock()
        with self._lock:
            if self._answered is not None and now - self._answered[0] < ttl_s:
                return self._answered[1]
        try:
            self.ping(timeout_s)
            answered = True
        except TransportError as exc:
            log.info("event=ipfs_api_unavailable api=%s error=%s", self.address.url, exc)
            answered = False
        with self._lock:
            self._answered = (now, answered)
        return answered

    def stat(self, cid: str, timeout_s: float) -> Stat:
        """What ``cid`` is and how big; NotFoundError when not found within ``timeout_s``."""
        import ipfshttpclient.exceptions as ipfs_errors

        try:
            found = self._client(timeout_s).files.stat(
                f"/ipfs/{cid}", opts={"timeout": _duration(timeout_s)}
            )
        except ipfs_errors.Error as exc:
            raise self._failed(exc, f"stat {cid}", timeout_s) from None
        kind = str(found.get("Type", ""))
        if kind not in ("file", "directory"):
            raise NotFoundError(f"{cid} is a {kind or 'unknown'} node, not a file or directory")
        return Stat(kind, int(found.get("CumulativeSize", 0)))

    def is_pinned(self, cid: str, timeout_s: float = 2.0) -> bool:
        """True when the node pins ``cid`` (directly, recursively or inside a pinned DAG)."""
        import ipfshttpclient.exceptions as ipfs_errors

        try:
            found = self._client(timeout_s).pin.ls(cid, opts={"timeout": _duration(timeout_s)})
        except ipfs_errors.ErrorResponse as exc:
            if "not pinned" in str(exc).lower():
                return False
            raise self._failed(exc, f"pin ls {cid}", timeout_s) from None
        except ipfs_errors.Error as exc:
            raise self._failed(exc, f"pin ls {cid}", timeout_s) from None
        return cid in found.get("Keys", {})

    def add_folder(self, folder: Path, timeout_s: float = 3600.0) -> str:
        """Add ``folder`` recursively (hidden files included), pin it, return its CID."""
        import ipfshttpclient.exceptions as ipfs_errors

        try:
            added = self._client(timeout_s).add(
                str(folder), recursive=True, pin=True, opts={"timeout": _duration(timeout_s)}
            )
        except ipfs_errors.Error as exc:
            raise self._failed(exc, f"add {folder}", timeout_s) from None
        entries = added if isinstance(added, list) else [added]
        for entry in entries:
            if entry.get("Name") == folder.name:
                return str(entry["Hash"])
        raise TransportError(f"IPFS API at {self.address.url}: add {folder} returned no folder CID")

    def get(
        self,
        cid: str,
        parent: Path,
        timeout_s: float = 3600.0,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path:
        """Write ``cid`` (a file or a folder) to ``parent/<cid>`` and return that path;
        ``on_bytes`` is told the size of each chunk of the API's tar stream as it arrives."""
        final = parent / cid
        scratch = parent / f".get-{cid}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        params = {"arg": cid, "archive": "true", "timeout": _duration(timeout_s)}
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(timeout_s + CLIENT_MARGIN_S)) as http,
                http.stream("POST", f"{self.address.url}/api/v0/get", params=params) as response,
            ):
                if response.is_error:
                    response.read()
                    raise self._server_error(_error_message(response), f"get {cid}", timeout_s)
                _extract_stream(_counted(response.iter_bytes(), on_bytes), scratch, cid)
            if not (scratch / cid).exists():
                raise TransportError(f"IPFS API at {self.address.url}: get {cid} sent nothing")
            (scratch / cid).replace(final)
        except httpx.HTTPError as exc:
            raise self._failed(exc, f"get {cid}", timeout_s) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return final


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("Message") or response.text)
    except ValueError:
        return response.text or f"{response.status_code} {response.reason_phrase}"


def _counted(chunks: Iterator[bytes], on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    for chunk in chunks:
        if on_bytes is not None and chunk:
            on_bytes(len(chunk))
        yield chunk


class _ChunkReader:
    """A read-only file over an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _extract_stream(chunks: Iterator[bytes], dest: Path, cid: str) -> None:
    """Unpack the ``get`` tar into ``dest``: every member must sit under ``<cid>``."""
    try:
        with tarfile.open(fileobj=cast(IO[bytes], _ChunkReader(chunks)), mode="r|") as tar:
            for member in tar:
                name = PurePosixPath(member.name.replace("\\", "/"))
                if name.is_absolute() or ".." in name.parts or name.parts[:1] != (cid,):
                    raise TransportError(f"get {cid}: refused archive member {member.name!r}")
                tar.extract(member, dest, filter="data")
    except tarfile.FilterError as exc:
        raise TransportError(f"get {cid}: refused archive member: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise TransportError(f"get {cid}: the archive cannot be read: {exc}") from None
