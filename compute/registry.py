"""A provider registry keyed by the spec's Type (case-insensitive), with a disabled list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from protocol.errors import ValidationError


class Provider(Protocol):
    @property
    def type(self) -> str: ...

    def is_installed(self) -> bool: ...


T = TypeVar("T", bound=Provider)


class Registry(Generic[T]):
    """Providers of one family. ``installed()`` lists the types a node can really serve."""

    def __init__(self, noun: str, providers: Iterable[T], disabled: Iterable[str] = ()) -> None:
        self.noun = noun
        self._disabled = {name.lower() for name in disabled}
        self._providers = {provider.type.lower(): provider for provider in providers}

    def get(self, type_name: str) -> T:
        provider = self._providers.get(type_name.lower())
        if provider is None or type_name.lower() in self._disabled:
            raise ValidationError("Type", f"{self.noun} {type_name!r} is not available here")
        return provider

    def has(self, type_name: str) -> bool:
        return type_name.lower() in self._providers and type_name.lower() not in self._disabled

    def installed(self) -> list[str]:
        """Types whose provider is enabled and answers ``is_installed()``, sorted."""
        return sorted(
            provider.type
            for key, provider in self._providers.items()
            if key not in self._disabled and provider.is_installed()
        )
