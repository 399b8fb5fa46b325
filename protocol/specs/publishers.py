"""Publishers: the params of ``noop``, ``local``, ``s3`` and ``ipfs``, their family and the
typed :class:`PublisherSpec`; and the ``RESULTS`` family of the result specs they record."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from protocol.specs.family import PARSED, OtherParams, SpecFamily, TypedSpec
from protocol.specs.sources import IPFSParams, S3Params, URLDownloadParams
from protocol.wire import WireModel


class NoopPublisherParams(WireModel):
    pass


class LocalPublisherParams(WireModel):
    pass


class S3PublisherParams(WireModel):
    """``Compress`` defaults to false as in Bacalhau (Go's zero value)."""

    bucket: str = Field(alias="Bucket")
    key: str = Field(default="", alias="Key")
    endpoint: str = Field(default="", alias="Endpoint")
    region: str = Field(default="", alias="Region")
    compress: bool = Field(default=False, alias="Compress")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a bucket")
        return value.strip()


class IPFSPublisherParams(WireModel):
    pass


class LocalResultParams(WireModel):
    """Results kept in a folder on the compute node; ``URL`` is a ``file://`` URL."""

    url: str = Field(alias="URL")


PUBLISHERS = SpecFamily(
    "publisher",
    {
        "noop": NoopPublisherParams,
        "local": LocalPublisherParams,
        "s3": S3PublisherParams,
        "ipfs": IPFSPublisherParams,
    },
)
# What a publisher returns, an untyped SpecConfig of the job model (``job get`` reads it).
RESULTS = SpecFamily(
    "result",
    {
        "local": LocalResultParams,
        "urlDownload": URLDownloadParams,
        "s3": S3Params,
        "ipfs": IPFSParams,
    },
)

PublisherParams = (
    NoopPublisherParams
    | LocalPublisherParams
    | S3PublisherParams
    | IPFSPublisherParams
    | OtherParams
)


class PublisherSpec(TypedSpec):
    """Where the results go: ``{Type: s3, Params: {Bucket: ..., Key: ...}}``."""

    family = PUBLISHERS
    params: Annotated[PublisherParams, PARSED] = Field(default_factory=OtherParams, alias="Params")
