"""Publisher params, and the ``local`` result spec they record."""

from __future__ import annotations

from pydantic import Field

from protocol.wire import WireModel


class NoopPublisherParams(WireModel):
    pass


class LocalPublisherParams(WireModel):
    pass


class S3PublisherParams(WireModel):
    bucket: str = Field(alias="Bucket")
    key: str = Field(default="", alias="Key")
    endpoint: str = Field(default="", alias="Endpoint")
    region: str = Field(default="", alias="Region")
    compress: bool = Field(default=True, alias="Compress")


class IPFSPublisherParams(WireModel):
    pass


class LocalResultParams(WireModel):
    """Results kept in a folder on the compute node; ``URL`` is a ``file://`` URL."""

    url: str = Field(alias="URL")
