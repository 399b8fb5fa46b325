"""Fetch a published result into a local folder: what ``bacalao job get`` does.

Publishers return a result spec (``local``, ``urlDownload``, ``s3``, ...);
:func:`download_result` turns one back into files under ``dest``, telling an optional
:class:`TransferProgress` how far it got (``urlDownload``, ``s3`` and ``ipfs``; a ``local``
copy is not a transfer). Lives in ``protocol`` so the CLI can use it without importing
``compute``. Errors:

- ValidationError  the spec cannot be downloaded here (unknown type, bad params, an archive
                   member that would land outside ``dest``)
- NotFoundError    the result is gone (missing folder, HTTP 404)
- TransportError   the download itself failed (network, other HTTP errors, too big)
"""

from __future__ import annotations

import logging
import shutil
import ssl
import tarfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import httpx

from protocol.errors import NotFoundError, TransportError, ValidationError
from protocol.job import SpecConfig
from protocol.specs.publishers import LocalResultParams
from protocol.specs.registry import RESULTS
from protocol.specs.sources import IPFSParams, S3Params, URLDownloadParams
from protocol.tls_client import default_trust, handshake_failure

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "download"
DEFAULT_TIMEOUT_S = 60.0
SUPPORTED_TYPES = ("local", "urlDownload", "s3", "ipfs")


class TransferProgress(Protocol):
    """Told the size of a download, then each chunk as it arrives (from several threads)."""

    def start(self, description: str, total_bytes: int | None) -> None: ...

    def advance(self, n_bytes: int) -> None: ...


def safe_filename(name: str, default: str = DEFAULT_FILENAME) -> str:
    """The last path component of ``name``, or ``default`` when nothing usable is left."""
    name = name.replace("\\", "/").replace("\x00", "").rsplit("/", 1)[-1].strip()
    if name in ("", ".", ".."):
        return default
    return name[:255]


def filename_for(url: str, content_disposition: str | None = None) -> str:
    """The file name a download is saved under: the ``Content-Disposition`` filename when
    the server sends one, else the last segment of the URL path, else ``download``."""
    if content_disposition:
        header = Message()
        header["content-disposition"] = content_disposition
        sent = header.get_filename()
        if sent:
            return safe_filename(sent)
    return safe_filename(PurePosixPath(unquote(urlparse(url).path)).name)


def check_tar_members(tar: tarfile.TarFile) -> None:
    """Refuse an archive with absolute member names or ``..`` components."""
    for member in tar.getmembers():
        name = member.name.replace("\\", "/")
        if name.startswith("/") or ".." in PurePosixPath(name).parts:
            raise ValidationError("", f"result archive member {member.name!r} escapes the folder")


def extract_tar(archive: Path, dest: Path) -> None:
    """Extract a tar (any compression) into ``dest``; unsafe members are refused, and the
    ``data`` filter refuses links out of ``dest``, devices and setuid bits."""
    try:
        with tarfile.open(archive) as tar:
            check_tar_members(tar)
            tar.extractall(dest, filter="data")
    except tarfile.FilterError as exc:
        raise ValidationError("", f"result archive: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise TransportError(f"result archive cannot be read: {exc}") from None


def _copy_local(params: LocalResultParams, dest: Path) -> None:
    parsed = urlparse(params.url)
    if parsed.scheme != "file":
        raise ValidationError("Params.URL", f"{params.url!r} is not a file:// URL")
    source = Path(url2pathname(parsed.path))
    if source.is_file() and tarfile.is_tarfile(source):
        extract_tar(source, dest)
        log.info("event=result_extracted source=%s dest=%s", source, dest)
        return
    if not source.is_dir():
        raise NotFoundError(
            f"result {source} does not exist here (local results stay on the node that ran the job)"
        )
    shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
    log.info("event=result_copied source=%s dest=%s", source, dest)


def content_length(response: httpx.Response) -> int | None:
    """The body's size in bytes as the server announced it, when it did and did not encode
    the body (an encoded body's length says nothing of the bytes it decodes to)."""
    text = response.headers.get("content-length", "")
    if not text.isdigit() or response.headers.get("content-encoding", "identity") != "identity":
        return None
    return int(text)


@dataclass(frozen=True)
class _Fetch:
    """How ``urlDownload`` results are fetched: ``transport`` replaces httpx's network
    transport (tests give an ``httpx.MockTransport``)."""

    timeout_s: float
    max_bytes: int | None
    progress: TransferProgress | None = None
    transport: httpx.BaseTransport | None = None
    verify: ssl.SSLContext | None = None  # whom an https:// server must prove it is


def _fetch(url: str, dest: Path, how: _Fetch) -> tuple[Path, str]:
    """Stream ``url`` to a hidden file in ``dest``; returns it and the name it should get."""
    partial = dest / ".download.partial"
    headers = {"Accept-Encoding": "identity"}
    max_bytes = how.max_bytes
    try:
        with (
            httpx.Client(
                follow_redirects=True,
                timeout=how.timeout_s,
                headers=headers,
                transport=how.transport,
                verify=how.verify or default_trust(),
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code == httpx.codes.NOT_FOUND:
                raise NotFoundError(f"GET {url}: 404 Not Found")
            if response.is_error:
                raise TransportError(f"GET {url}: {response.status_code} {response.reason_phrase}")
            if how.progress is not None:
                how.progress.start(url, content_length(response))
            received_bytes = 0
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    received_bytes += len(chunk)
                    if max_bytes is not None and received_bytes > max_bytes:
                        raise TransportError(f"GET {url}: larger than {max_bytes} bytes")
                    out.write(chunk)
                    if how.progress is not None:
                        how.progress.advance(len(chunk))
            name = filename_for(str(response.url), response.headers.get("content-disposition"))
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        tls = handshake_failure(exc)
        if tls is not None and tls.untrusted:
            raise TransportError(
                f"GET {url}: cannot trust the results server: {tls.reason} (a private CA's "
                "certificate goes in --tls-ca or BACALAO_TLS_CA)"
            ) from None
        raise TransportError(f"GET {url}: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return partial, name


def _download_url(params: URLDownloadParams, dest: Path, how: _Fetch) -> None:
    fetched, name = _fetch(params.url, dest, how)
    try:
        if tarfile.is_tarfile(fetched):
            extract_tar(fetched, dest)
            log.info("event=result_extracted url=%s dest=%s", params.url, dest)
            return
        final = dest / name
        fetched.replace(final)
        log.info("event=result_downloaded url=%s path=%s", params.url, final)
    finally:
        fetched.unlink(missing_ok=True)


def download_result(
    spec: SpecConfig,
    dest: Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int | None = None,
    progress: TransferProgress | None = None,
    ipfs_api: str | None = None,
    transport: httpx.BaseTransport | None = None,
    verify: ssl.SSLContext | None = None,
) -> None:
    """Put the files of the result ``spec`` under ``dest`` (created if needed). ``ipfs_api``:
    the IPFS daemon that fetches ``ipfs`` results (default: ``BACALAO_IPFS_API``, else
    ``/ip4/127.0.0.1/tcp/5001``); ``transport``: httpx's transport for ``urlDownload``
    results (default: the network); ``verify``: the CAs an https:// results server's
    certificate must chain to (default: :func:`~protocol.tls_client.default_trust`, the
    system's)."""
    kind = RESULTS.canonical(spec.type)
    if kind not in SUPPORTED_TYPES:
        raise ValidationError(
            "Type",
            f"cannot download a {spec.type!r} result (supported: {', '.join(SUPPORTED_TYPES)})",
        )
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "local":
        _copy_local(LocalResultParams.from_wire(spec.params, prefix="Params"), dest)
    elif kind == "s3":
        from protocol.results_s3 import download_s3_result

        s3_params = S3Params.from_wire(spec.params, prefix="Params")
        download_s3_result(s3_params, dest, progress, max_bytes=max_bytes)
    elif kind == "ipfs":
        from protocol.results_ipfs import download_ipfs_result

        ipfs_params = IPFSParams.from_wire(spec.params, prefix="Params")
        download_ipfs_result(ipfs_params, dest, ipfs_api, max_bytes=max_bytes, progress=progress)
    else:
        params = URLDownloadParams.from_wire(spec.params, prefix="Params")
        _download_url(params, dest, _Fetch(timeout_s, max_bytes, progress, transport, verify))
