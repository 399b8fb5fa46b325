"""``--publisher`` values as publisher specs, in Bacalhau's forms::

    local | noop | ipfs
    s3://bucket/key[,opt=endpoint=URL][,opt=region=R][,opt=compress=true]
    s3,opt=bucket=B,opt=key=K[,...]          (the same, without a URI)
    target=s3://bucket/key,opt=...            (dst= and destination= too)

The value is split at commas as a CSV record (quote a part that holds a comma). Option names
are matched case-insensitively; every problem is a :class:`~cli.errors.JobSpecError` naming
``--publisher``.
"""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlparse

from cli.errors import JobSpecError
from protocol.errors import ValidationError
from protocol.job import PublisherSpec

OPTION = "--publisher"
SIMPLE_TYPES = ("local", "noop", "ipfs")
PUBLISHER_FORMS = (
    "local, noop, ipfs or "
    "s3://bucket/key[,opt=endpoint=URL][,opt=region=R][,opt=compress=true|false]"
)
_TARGET_KEYS = ("target", "dst", "destination")
_OPTION_KEYS = ("opt", "option")
_S3_OPTIONS = {
    "bucket": "Bucket",
    "key": "Key",
    "endpoint": "Endpoint",
    "region": "Region",
    "compress": "Compress",
}
# What ``opt=...=VALUE`` flags accept (``--publisher``, ``--input``), lowercased.
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _fail(value: str, problem: str) -> JobSpecError:
    return JobSpecError(f"{value!r}: {problem}", option=OPTION)


def _split(value: str) -> tuple[str, dict[str, str]]:
    """``s3://b/k,opt=region=r`` -> (``s3://b/k``, ``{"region": "r"}``)."""
    try:
        fields = next(csv.reader([value], skipinitialspace=True), [])
    except csv.Error as exc:
        raise _fail(value, f"cannot be split at commas ({exc})") from None
    destination = ""
    options: dict[str, str] = {}
    for index, field in enumerate(part.strip() for part in fields):
        key, equals, rest = field.partition("=")
        key = key.strip().lower()
        if not equals and index == 0:
            destination = field
        elif equals and key in _TARGET_KEYS:
            destination = rest.strip()
        elif equals and key in _OPTION_KEYS:
            name, _, setting = rest.partition("=")
            if not name.strip():
                raise _fail(value, f"{field!r} names no option (opt=NAME=VALUE)")
            options[name.strip().lower()] = setting.strip()
        else:
            hint = "use opt=NAME=VALUE or target=URI after the type"
            raise _fail(value, f"{field!r} is not an option ({hint})")
    return destination.strip(" '\""), options


def _endpoint(value: str, text: str) -> str:
    parsed = urlparse(text)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
        raise _fail(value, f"endpoint {text!r} is not an http(s):// URL")
    return text


def _compress(value: str, text: str) -> bool:
    flag = BOOLEANS.get(text.lower())
    if flag is None:
        raise _fail(value, f"compress={text!r} is not true or false")
    return flag


def _s3_spec(value: str, destination: str, options: dict[str, str]) -> PublisherSpec:
    parsed = urlparse(destination)
    params: dict[str, Any] = {"Bucket": parsed.netloc, "Key": parsed.path.lstrip("/")}
    unknown = sorted(set(options) - set(_S3_OPTIONS))
    if unknown:
        known = ", ".join(f"opt={name}=..." for name in _S3_OPTIONS)
        raise _fail(value, f"unknown option {unknown[0]!r} of the s3 publisher (known: {known})")
    for name, setting in options.items():
        wire = _S3_OPTIONS[name]
        if wire == "Endpoint":
            params[wire] = _endpoint(value, setting)
        elif wire == "Compress":
            params[wire] = _compress(value, setting)
        else:
            params[wire] = setting
    if not params["Bucket"]:
        raise _fail(value, "names no bucket (s3://bucket/key or opt=bucket=NAME)")
    try:
        return PublisherSpec.from_wire({"Type": "s3", "Params": params})
    except ValidationError as exc:
        raise _fail(value, exc.problem) from None


def parse_publisher(value: str) -> PublisherSpec:
    """One ``--publisher`` value -> its typed publisher spec."""
    destination, options = _split(value)
    if not destination:
        raise _fail(value, f"names no publisher ({PUBLISHER_FORMS})")
    scheme, separator, rest = destination.partition("://")
    kind = scheme.lower()
    if kind == "s3":
        return _s3_spec(value, destination if separator else "", options)
    if kind not in SIMPLE_TYPES or rest.strip("/"):
        raise _fail(value, f"is not a publisher ({PUBLISHER_FORMS})")
    if options:
        raise _fail(value, f"the {kind} publisher takes no options (got opt={next(iter(options))})")
    return PublisherSpec(type=kind)
