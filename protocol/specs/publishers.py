"""Publisher params, and the ``local`` result spec they record."""

from __future__ import annotations

from pydantic import Field, field_validator

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
