"""Spec families: a registry from Type (any case, with aliases) to its params model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from protocol.errors import ValidationError
from protocol.job import SpecConfig
from protocol.specs import engines, publishers, sources
from protocol.wire import WireModel

P = TypeVar("P", bound=WireModel)


@dataclass(frozen=True)
class SpecFamily:
    """One plugin family (engines, sources, publishers): its types and their params models."""

    noun: str
    models: dict[str, type[WireModel]]
    aliases: dict[str, str] = field(default_factory=dict)

    def canonical(self, type_name: str) -> str | None:
        """The registered spelling of ``type_name`` (case-insensitive), or None."""
        lowered = type_name.strip().lower()
        lowered = self.aliases.get(lowered, lowered)
        for name in self.models:
            if name.lower() == lowered:
                return name
        return None

    def spelled(self, type_name: str) -> str:
        """The registered spelling of ``type_name``, or ``type_name`` as given when it is
        not registered (a rule then refuses it by that name)."""
        return self.canonical(type_name) or type_name

    @property
    def known(self) -> str:
        return ", ".join(sorted(self.models))

    def parse(self, spec: SpecConfig, where: str) -> WireModel:
        """Typed params of ``spec``; ValidationError names ``where`` and the bad field."""
        name = self.canonical(spec.type)
        if name is None:
            raise ValidationError(
                f"{where}.Type", f"unknown {self.noun} {spec.type!r} (known: {self.known})"
            )
        return self.models[name].from_wire(spec.params, prefix=f"{where}.Params")

    def parse_as(self, spec: SpecConfig, model: type[P], where: str = "") -> P:
        params = self.parse(spec, where or self.noun)
        if not isinstance(params, model):
            raise ValidationError(f"{where}.Type", f"expected a {model.__name__} spec")
        return params


ENGINES = SpecFamily(
    "engine",
    {"wasm": engines.WasmParams, "docker": engines.DockerParams, "noop": engines.NoopParams},
)
SOURCES = SpecFamily(
    "storage source",
    {
        "inline": sources.InlineParams,
        "local": sources.LocalParams,
        "urlDownload": sources.URLDownloadParams,
        "s3": sources.S3Params,
        "ipfs": sources.IPFSParams,
    },
    aliases={"localdirectory": "local", "url": "urldownload"},
)
PUBLISHERS = SpecFamily(
    "publisher",
    {
        "noop": publishers.NoopPublisherParams,
        "local": publishers.LocalPublisherParams,
        "s3": publishers.S3PublisherParams,
        "ipfs": publishers.IPFSPublisherParams,
    },
)
RESULTS = SpecFamily(
    "result",
    {
        "local": publishers.LocalResultParams,
        "urlDownload": sources.URLDownloadParams,
        "s3": sources.S3Params,
        "ipfs": sources.IPFSParams,
    },
)
