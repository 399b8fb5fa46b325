"""Resource amounts in base units: CPU cores, memory and disk bytes, GPU count."""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field

from protocol.units import format_bytes, format_cpu, size_for_people
from protocol.wire import WireModel


class Resources(WireModel):
    """Bacalhau's wire shape ``{CPU: 1.5, Memory: 1073741824, Disk: 0, GPU: 0}``."""

    model_config = ConfigDict(frozen=True)

    cpu: float = Field(default=0.0, ge=0, alias="CPU")
    memory: int = Field(default=0, ge=0, alias="Memory")
    disk: int = Field(default=0, ge=0, alias="Disk")
    gpu: int = Field(default=0, ge=0, alias="GPU")

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            cpu=round(self.cpu + other.cpu, 6),
            memory=self.memory + other.memory,
            disk=self.disk + other.disk,
            gpu=self.gpu + other.gpu,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            cpu=max(0.0, round(self.cpu - other.cpu, 6)),
            memory=max(0, self.memory - other.memory),
            disk=max(0, self.disk - other.disk),
            gpu=max(0, self.gpu - other.gpu),
        )

    def fits_in(self, other: Resources) -> bool:
        """True when every dimension of self is at most other's (0 in other = unlimited)."""
        return not self.exceeding(other)

    def exceeding(self, other: Resources) -> list[str]:
        """The dimensions where self asks for more than other, readable."""
        problems = []
        if self.cpu > other.cpu + 1e-9:
            problems.append(f"cpu {format_cpu(self.cpu)} > {format_cpu(other.cpu)}")
        if self.memory > other.memory:
            shown = f"{size_for_people(self.memory)} > {size_for_people(other.memory)}"
            problems.append(f"memory {shown}")
        if self.disk > other.disk and other.disk:
            problems.append(f"disk {size_for_people(self.disk)} > {size_for_people(other.disk)}")
        if self.gpu > other.gpu:
            problems.append(f"gpu {self.gpu} > {other.gpu}")
        return problems

    def with_defaults(self, defaults: Resources) -> Self:
        """Fill the dimensions a job left at zero with a node's defaults."""
        return self.model_copy(
            update={
                "cpu": self.cpu or defaults.cpu,
                "memory": self.memory or defaults.memory,
                "disk": self.disk or defaults.disk,
            }
        )

    def describe(self) -> str:
        return (
            f"cpu={format_cpu(self.cpu)} memory={format_bytes(self.memory)} "
            f"disk={format_bytes(self.disk)} gpu={self.gpu}"
        )
