"""``inline`` storage: the data travels inside the job as an RFC 2397 ``data:`` URL.

``data:[<mediatype>][;base64],<data>`` -- base64 or percent-encoded. As in Bacalhau, the
mediatype decides what the bytes are:

- ``application/gzip`` (or ``application/x-gzip``, ``...+gzip``): gzip'd data. A gzip'd tar
  (what Bacalhau's clients send for a folder, or a file over 512 bytes) is unpacked into a
  folder mounted at the target, so ``<Target>/<name>`` is each archived entry; any other
  gzip'd data is gunzipped into one file.
- anything else: the bytes as they are (a ``.gz`` file sent as ``application/octet-stream``
  stays gzip'd), in one file.

Everything is mounted read-only at the source's target; at most ``max_bytes`` are decoded or
gunzipped, and archive members that would leave the folder are refused.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import logging
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, unquote_to_bytes

from compute.executors.base import Mount
from protocol.errors import ExecutionError, ValidationError
from protocol.job import InputSource, SourceSpec
from protocol.results import check_tar_members, safe_filename
from protocol.specs.sources import InlineParams

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
GZIP_MEDIATYPES = frozenset({"application/gzip", "application/x-gzip"})
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class DataURL:
    """The parts of a ``data:`` URL, still encoded."""

    mediatype: str
    is_base64: bool
    payload: str

    @property
    def says_gzip(self) -> bool:
        return self.mediatype in GZIP_MEDIATYPES or self.mediatype.endswith("+gzip")

    def estimated_size_bytes(self) -> int:
        """Decoded size before any gunzip: exact enough to refuse a too-big URL early."""
        if self.is_base64:
            return len(self.payload) * 3 // 4
        return len(self.payload) - 2 * self.payload.count("%")


def split_data_url(url: str) -> DataURL:
    """Split ``url`` into mediatype, encoding and payload; ExecutionError when malformed."""
    if not url.startswith("data:"):
        raise ExecutionError("inline: URL must start with 'data:'")
    header, sep, payload = url.removeprefix("data:").partition(",")
    if not sep:
        raise ExecutionError("inline: data URL has no ',' between header and data")
    parts = [part.strip() for part in header.split(";")]
    is_base64 = parts[-1].lower() == "base64"
    mediatype = parts[0].lower() if "/" in parts[0] else ""
    return DataURL(mediatype=mediatype, is_base64=is_base64, payload=payload)


def decode_payload(data_url: DataURL) -> bytes:
    """The raw bytes of the payload (base64, standard or URL-safe alphabet, or %-escapes)."""
    if not data_url.is_base64:
        return unquote_to_bytes(data_url.payload)
    text = _WHITESPACE.sub("", unquote(data_url.payload)).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ExecutionError(f"inline: data URL is not valid base64: {exc}") from None


def gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """Gunzip ``data`` reading at most ``max_bytes`` (plus one to notice a bomb)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ExecutionError(f"inline: data URL is not valid gzip: {exc}") from None
    if len(out) > max_bytes:
        raise ExecutionError(f"inline: data is larger than {max_bytes} bytes once gunzipped")
    return out


def decode_data_url(url: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The content of a ``data:`` URL, gunzipped when its mediatype says gzip; at most
    ``max_bytes``."""
    data_url = split_data_url(url)
    if data_url.estimated_size_bytes() > max_bytes:
        raise ExecutionError(
            f"inline: data is about {data_url.estimated_size_bytes()} bytes, "
            f"over the limit of {max_bytes} bytes"
        )
    raw = decode_payload(data_url)
    if data_url.says_gzip:
        return gunzip_bounded(raw, max_bytes)
    if len(raw) > max_bytes:
        raise ExecutionError(f"inline: data is {len(raw)} bytes, over the limit of {max_bytes}")
    return raw


def is_tar(data: bytes) -> bool:
    try:
        return tarfile.is_tarfile(io.BytesIO(data))
    except (OSError, EOFError):
        return False


def extract_tar_bytes(data: bytes, folder: Path) -> None:
    """Unpack the tar ``data`` into ``folder``; members that would leave it are refused."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            check_tar_members(tar)
            tar.extractall(folder, filter="data")
    except (ValidationError, tarfile.TarError) as exc:
        raise ExecutionError(f"inline: the gzip'd tar archive cannot be unpacked: {exc}") from None


def _params(spec: SourceSpec) -> InlineParams:
    try:
        return spec.params_as(InlineParams, "Source")
    except ValidationError as exc:
        raise ExecutionError(f"inline: {exc}") from None


class InlineStorage:
    """Decodes ``data:`` URLs; always installed, the data is always local."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    @property
    def type(self) -> str:
        return "inline"

    def is_installed(self) -> bool:
        return True

    def has_locally(self, spec: SourceSpec) -> bool:
        return True

    def size_bytes(self, spec: SourceSpec) -> int | None:
        try:
            return split_data_url(_params(spec).url).estimated_size_bytes()
        except ExecutionError:
            return None

    def prepare(self, source: InputSource, staging_dir: Path) -> Mount:
        url = _params(source.source).url
        content = decode_data_url(url, self.max_bytes)
        staging_dir.mkdir(parents=True, exist_ok=True)
        if split_data_url(url).says_gzip and is_tar(content):
            folder = staging_dir / "inline"
            extract_tar_bytes(content, folder)
            log.info("event=inline_unpacked path=%s size_bytes=%d", folder, len(content))
            return Mount(source=folder, target=source.target, read_only=True)
        name = safe_filename(PurePosixPath(source.target).name, default="inline")
        path = staging_dir / name
        path.write_bytes(content)
        log.info("event=inline_staged path=%s size_bytes=%d", path, len(content))
        return Mount(source=path, target=source.target, read_only=True)
