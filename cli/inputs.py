"""``--input`` values and the wasm module argument, as InputSources.

Short form ``SRC[:DST]``, Bacalhau's long form ``src=URI,dst=PATH,opt=KEY=VALUE`` and its
mix of the two (``s3://bucket/key,dst=/in,opt=region=eu-west-1``). A SRC is one of::

    /abs/path  file:///abs/path   a path on the compute node          -> local
    http(s)://host/path           downloaded by the compute node      -> urlDownload
    data:[<type>][;base64],<data> carried inside the job              -> inline
    s3://bucket/key               an object or a prefix               -> s3
    ipfs://CID                    content on IPFS                     -> ipfs
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import wasmtime

from cli.errors import JobSpecError
from cli.publishers import BOOLEANS
from protocol.errors import ValidationError
from protocol.job import InputSource, SourceSpec
from protocol.specs.sources import InlineParams

DEFAULT_INPUT_TARGET = "/inputs"
MODULE_DIR = "/app"
LARGE_MODULE_BYTES = 4 * 1024 * 1024
_FORMS = "use /abs/path, file:///abs/path, http(s)://..., data:..., s3://bucket/key or ipfs://CID"
_LONG_KEYS = {
    "src": "src",
    "source": "src",
    "dst": "dst",
    "target": "dst",
    "destination": "dst",
    "opt": "opt",
    "opts": "opt",
    "option": "opt",
    "options": "opt",
}
_OPTIONS = {
    "local": {
        "readwrite": "ReadWrite",
        "read-write": "ReadWrite",
        "read_write": "ReadWrite",
        "rw": "ReadWrite",
    },
    "s3": {
        "region": "Region",
        "endpoint": "Endpoint",
        "versionid": "VersionID",
        "version-id": "VersionID",
        "version_id": "VersionID",
        "version": "VersionID",
        "checksum-sha256": "ChecksumSHA256",
        "checksum-256": "ChecksumSHA256",
        "checksum256": "ChecksumSHA256",
        "checksum_256": "ChecksumSHA256",
        "filter": "Filter",
    },
}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_KEYED_PART = re.compile(r",\s*(" + "|".join(_LONG_KEYS) + r")\s*=", re.IGNORECASE)


def source_spec(uri: str, *, option: str = "--input") -> SourceSpec:
    """``s3://bucket/key`` -> ``SourceSpec(type="s3", params=S3Params(bucket=..., key=...))``."""
    return _typed(_wire_source(uri, option), option)


def _typed(wire: dict[str, Any], option: str) -> SourceSpec:
    try:
        return SourceSpec.from_wire(wire)
    except ValidationError as exc:
        raise JobSpecError(exc.problem, option=option) from None


def _wire_source(uri: str, option: str) -> dict[str, Any]:
    """The ``{Type, Params}`` a SRC names, options still to be added."""
    uri = uri.strip()
    if uri.startswith("/"):
        return {"Type": "local", "Params": {"SourcePath": uri}}
    if uri.startswith("data:"):
        return {"Type": "inline", "Params": {"URL": uri}}
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise JobSpecError(f"{uri!r}: file:// URLs name a path, not a host", option=option)
        return {"Type": "local", "Params": {"SourcePath": unquote(parsed.path)}}
    if scheme in ("http", "https"):
        _check_http_url(uri, parsed.netloc, option)
        return {"Type": "urlDownload", "Params": {"URL": uri}}
    if scheme == "s3":
        if not parsed.netloc:
            raise JobSpecError(f"{uri!r} names no bucket (s3://bucket/key)", option=option)
        return {"Type": "s3", "Params": {"Bucket": parsed.netloc, "Key": parsed.path[1:]}}
    if scheme == "ipfs":
        cid = (parsed.netloc + parsed.path).strip("/")
        if not cid:
            raise JobSpecError(f"{uri!r} names no CID (ipfs://CID)", option=option)
        return {"Type": "ipfs", "Params": {"CID": cid}}
    if not scheme:
        raise JobSpecError(
            f"{uri!r} is not an absolute path or a URL (paths are read on the compute node, "
            "so they must be absolute)",
            option=option,
        )
    raise JobSpecError(f"{uri!r}: unsupported scheme {scheme!r}; {_FORMS}", option=option)


def _check_http_url(uri: str, authority: str, option: str) -> None:
    """An http(s) URL a compute node can download: a host, and a port that is a number from
    1 to 65535 (``http://x:data`` is neither a port nor a DST, which must be absolute)."""
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):  # an IPv6 literal: the port follows the bracket
        port = host_port.partition("]")[2].removeprefix(":")
    else:
        port = host_port.partition(":")[2]
    if port and not port.isdigit():
        hint = ""
        if uri.endswith(":" + port):  # meant as a DST? Those are absolute paths
            hint = f" (a DST must be an absolute path: {uri.removesuffix(':' + port)}:/{port})"
        raise JobSpecError(f"{uri!r}: the port {port!r} is not a number{hint}", option=option)
    if port and not 0 < int(port) < 65536:
        raise JobSpecError(f"{uri!r}: port {port} is out of range (1-65535)", option=option)
    try:
        url = httpx.URL(uri)
    except httpx.InvalidURL as exc:
        raise JobSpecError(f"{uri!r} is not a valid URL ({exc})", option=option) from None
    if not url.host:
        raise JobSpecError(f"{uri!r} has no host", option=option)


def _split_short(text: str) -> tuple[str, str]:
    """``SRC:DST`` -> (SRC, DST); the last colon followed by ``/`` separates them, unless
    what comes before is a bare scheme (``file:///x`` has no DST)."""
    head, colon, tail = text.rpartition(":")
    if colon and tail.startswith("/") and head and not _SCHEME.fullmatch(head):
        return head, tail
    return text, ""


def _split_long(text: str) -> dict[str, str]:
    """``src=URI,dst=PATH,opt=a=b,opt=c=d`` -> parts; a comma not followed by a known key
    belongs to the value before it (data: URLs contain commas). A first part without a key
    is the source, as in Bacalhau's ``s3://bucket/key,dst=/in``."""
    parts: list[list[str]] = []
    for chunk in text.split(","):
        key, equals, value = chunk.partition("=")
        name = _LONG_KEYS.get(key.strip().lower())
        if equals and name:
            parts.append([name, value])
        elif parts:
            parts[-1][1] += "," + chunk
        else:
            parts.append(["src", chunk])
    found: dict[str, str] = {}
    for name, value in parts:
        if name == "opt":
            found["opt"] = f"{found['opt']},{value}" if "opt" in found else value
        elif name in found:
            raise JobSpecError(f"{text!r} gives {name}= twice", option="--input")
        else:
            found[name] = value.strip()
    return found


def _apply_options(spec: dict[str, Any], options: str, text: str) -> None:
    known: Mapping[str, str] = _OPTIONS.get(spec["Type"], {})
    for option in filter(None, (part.strip() for part in options.split(","))):
        key, equals, value = option.partition("=")
        wire = known.get(key.strip().lower())
        if wire is None:
            allowed = ", ".join(sorted(known)) or "none"
            raise JobSpecError(
                f"{text!r}: unknown option {key!r} for a {spec['Type']} source (known: {allowed})",
                option="--input",
            )
        if wire == "ReadWrite":
            flag = BOOLEANS.get(value.strip().lower()) if equals else True
            if flag is None:
                raise JobSpecError(
                    f"{text!r}: {key}={value!r} is not true or false", option="--input"
                )
            spec["Params"][wire] = flag
        else:
            spec["Params"][wire] = value.strip()


def parse_input(text: str) -> InputSource:
    """One ``--input`` value -> its InputSource, the source's params typed."""
    stripped = text.strip()
    if not stripped:
        raise JobSpecError("empty value", option="--input")
    first_key = stripped.split("=", 1)[0].strip().lower()
    keyed_first = "=" in stripped and first_key in _LONG_KEYS
    if keyed_first or _KEYED_PART.search(stripped):
        parts = _split_long(stripped)
        if not parts.get("src"):
            raise JobSpecError(f"{text!r} has no src=", option="--input")
        source, target = parts["src"], parts.get("dst", "")
        if not keyed_first and not target:  # Bacalhau's SRC:DST,opt=... mixed form
            source, target = _split_short(source)
        wire = _wire_source(source, "--input")
        _apply_options(wire, parts.get("opt", ""), text)
    else:
        source, target = _split_short(stripped)
        wire = _wire_source(source, "--input")
    target = target or DEFAULT_INPUT_TARGET
    if not target.startswith("/"):
        raise JobSpecError(f"{text!r}: the target {target!r} must be absolute", option="--input")
    try:
        return InputSource.from_wire({"Source": _typed(wire, "--input"), "Target": target})
    except ValidationError as exc:
        raise JobSpecError(exc.problem, option="--input") from None


@dataclass(frozen=True)
class Module:
    """The wasm module of ``bacalao wasm run``: an InputSource and where it lands."""

    input_source: InputSource
    target: str
    size_bytes: int | None = None

    @property
    def too_large(self) -> bool:
        return self.size_bytes is not None and self.size_bytes > LARGE_MODULE_BYTES


def _module_target(name: str) -> str:
    stem = PurePosixPath(name).stem or "module"
    return f"{MODULE_DIR}/{stem}.wasm"


def read_module(path: Path) -> bytes:
    """The bytes of a ``.wasm`` file, or of a ``.wat`` file compiled here."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JobSpecError(f"cannot read {path}: {exc.strerror or exc}", option="MODULE") from None
    if path.suffix.lower() != ".wat":
        if not data.startswith(b"\0asm"):
            raise JobSpecError(f"{path} is not a wasm module (nor a .wat file)", option="MODULE")
        return data
    try:
        return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
    except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobSpecError(f"{path} does not compile: {first}", option="MODULE") from None


def inline_module(data: bytes, name: str) -> Module:
    """A module carried inside the job as a base64 ``data:`` URL."""
    url = "data:application/wasm;base64," + base64.b64encode(data).decode("ascii")
    target = _module_target(name)
    source = _module_input(SourceSpec(type="inline", params=InlineParams(url=url)), target)
    return Module(input_source=source, target=target, size_bytes=len(data))


def _module_input(spec: SourceSpec, target: str) -> InputSource:
    try:
        return InputSource.from_wire({"Source": spec, "Target": target})
    except ValidationError as exc:
        raise JobSpecError(exc.problem, option="MODULE") from None


def module_source(module: str) -> Module:
    """MODULE of ``wasm run``: a local ``.wasm``/``.wat`` file (inlined) or a URL the
    compute node fetches (``https://``, ``s3://``, ``ipfs://``)."""
    parsed = urlparse(module)
    is_url = len(parsed.scheme) > 1 and parsed.scheme.lower() != "file"
    if not is_url:
        path = Path(unquote(parsed.path) if parsed.scheme else module).expanduser()
        return inline_module(read_module(path), path.name)
    if parsed.scheme.lower() == "data":
        raise JobSpecError("give the module as a file or a URL, not a data: URL", option="MODULE")
    spec = source_spec(module, option="MODULE")
    target = _module_target(PurePosixPath(unquote(parsed.path)).name)
    return Module(input_source=_module_input(spec, target), target=target)
