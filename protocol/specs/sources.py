"""Input sources: the params of ``inline``, ``local``, ``urlDownload``, ``s3`` and ``ipfs``,
their family, the typed :class:`SourceSpec` and the task's :class:`InputSource`."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import Field, ValidationInfo, field_validator

from protocol.paths import path_problem, trimmed
from protocol.specs.family import PARSED, OtherParams, SpecFamily, TypedSpec
from protocol.wire import WireModel, is_stored


class InlineParams(WireModel):
    """An RFC 2397 ``data:`` URL (base64 or percent-encoded, optionally gzip'd)."""

    url: str = Field(alias="URL")

    @field_validator("url")
    @classmethod
    def _data_url(cls, value: str) -> str:
        if not value.startswith("data:") or "," not in value:
            raise ValueError("must be a data: URL (data:[<mediatype>][;base64],<data>)")
        return value


# Bacalhau's CreateAs values for a local source that is not there yet, in its spelling.
CREATE_DIR = "dir"
CREATE_FILE = "file"
NO_CREATE = "noCreate"
CREATE_STRATEGIES = (CREATE_DIR, CREATE_FILE, NO_CREATE)


class LocalParams(WireModel):
    """A path of the compute node. ``CreateAs`` (``dir``, ``file`` or the default
    ``noCreate``, in any case as in Bacalhau) makes a missing path when ``ReadWrite`` is set."""

    source_path: str = Field(alias="SourcePath")
    read_write: bool = Field(default=False, alias="ReadWrite")
    create_as: str = Field(default=NO_CREATE, alias="CreateAs")

    @field_validator("source_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path on the compute node")
        return value

    @field_validator("create_as", mode="before")
    @classmethod
    def _known_strategy(cls, value: Any) -> Any:
        if value is None or value == "":
            return NO_CREATE
        if isinstance(value, str):
            for strategy in CREATE_STRATEGIES:
                if strategy.lower() == value.strip().lower():
                    return strategy
            raise ValueError(f"{value!r} is not one of {', '.join(CREATE_STRATEGIES)}")
        return value

    @property
    def creatable(self) -> bool:
        """Whether a missing path is made rather than refused (Bacalhau: only read-write)."""
        return self.read_write and self.create_as != NO_CREATE


class URLDownloadParams(WireModel):
    url: str = Field(alias="URL")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        try:
            parsed.port  # noqa: B018  (parsing the port is the check)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a usable URL: {exc}") from None
        return value


class S3Params(WireModel):
    bucket: str = Field(alias="Bucket")
    key: str = Field(default="", alias="Key")
    region: str = Field(default="", alias="Region")
    endpoint: str = Field(default="", alias="Endpoint")
    version_id: str = Field(default="", alias="VersionID")
    checksum_sha256: str = Field(default="", alias="ChecksumSHA256")
    filter: str = Field(default="", alias="Filter")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not value:
            raise ValueError("must name a bucket")
        return value

    @field_validator("filter")
    @classmethod
    def _regex(cls, value: str) -> str:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class IPFSParams(WireModel):
    cid: str = Field(alias="CID")

    @field_validator("cid")
    @classmethod
    def _cid(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a CID")
        return value.strip()


SOURCES = SpecFamily(
    "storage source",
    {
        "inline": InlineParams,
        "local": LocalParams,
        "urlDownload": URLDownloadParams,
        "s3": S3Params,
        "ipfs": IPFSParams,
    },
    aliases={"localdirectory": "local", "url": "urlDownload"},
)

SourceParams = InlineParams | LocalParams | URLDownloadParams | S3Params | IPFSParams | OtherParams


class SourceSpec(TypedSpec):
    """Where an input comes from: ``{Type: s3, Params: {Bucket: ..., Key: ...}}``."""

    family = SOURCES
    params: Annotated[SourceParams, PARSED] = Field(default_factory=OtherParams, alias="Params")


class InputSource(WireModel):
    source: SourceSpec = Field(alias="Source")
    alias: str = Field(default="", alias="Alias")
    target: str = Field(default="", alias="Target")

    @field_validator("alias", "target", mode="before")
    @classmethod
    def _trim(cls, value: Any) -> Any:
        return trimmed(value)

    @field_validator("target")
    @classmethod
    def _target_absolute(cls, value: str, info: ValidationInfo) -> str:
        problem = path_problem(value) if value and not is_stored(info) else None
        if problem:
            raise ValueError(problem)
        return value
