"""Resource quantities as Bacalhau writes them: CPU in Kubernetes units, sizes humanized.

Each parser raises ValueError with a readable message, also for amounts too large to mean
anything (bounds below), so no caller ever sees an overflow.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

INT64_MAX = 2**63 - 1
# A task runs on one machine, and Linux addresses at most 8192 CPUs (x86-64 NR_CPUS with
# MAXSMP); 65536 leaves room for bigger machines while rejecting numbers that cannot be meant.
MAX_CPU_CORES = 65536
MAX_BYTES = INT64_MAX  # 8 EiB: fits Go's int64 (and Docker's Memory), like Bacalhau's uint64
MAX_GPUS = INT64_MAX  # fits Go's int (Docker's DeviceRequest.Count); Bacalhau parses a uint64
_SHOWN_CHARS = 24

_CPU = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(m?)\s*$")
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")
_GPU = re.compile(r"^\s*([0-9]+)\s*$")
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
}


def shown(text: str) -> str:
    """``text`` quoted for a message, cut short when it is long: ``'1111…' (400 characters)``."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}… ({len(text)} characters)"


def shown_number(value: int) -> str:
    """``value`` for a message; a huge one as ``a number of about 400 digits``."""
    if abs(value).bit_length() <= 100:
        return str(value)
    return f"a number of about {math.ceil(abs(value).bit_length() * math.log10(2))} digits"


def parse_cpu(text: str) -> float:
    """``"500m"`` -> 0.5, ``"2"`` -> 2.0, at most :data:`MAX_CPU_CORES`."""
    match = _CPU.match(text)
    if match is None:
        raise ValueError(f"{shown(text)} is not a CPU quantity (examples: 500m, 0.5, 2)")
    cores = Decimal(match.group(1)) / (1000 if match.group(2) else 1)
    if cores > MAX_CPU_CORES:
        raise ValueError(
            f"{shown(text)} is more CPU than a machine has (at most {MAX_CPU_CORES} cores)"
        )
    return float(cores)


def parse_bytes(text: str) -> int:
    """``"512Mb"`` -> 512_000_000, ``"1Gi"`` -> 1_073_741_824, ``"1024"`` -> 1024, at most
    :data:`MAX_BYTES`; a fraction of a byte is dropped."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"{shown(text)} is not a size (examples: 512Mb, 1Gi, 2GB, 1048576)")
    size = Decimal(match.group(1)) * _SIZE_UNITS[unit]
    if size > MAX_BYTES:
        raise ValueError(f"{shown(text)} is too large (at most {MAX_BYTES} bytes, 8 EiB)")
    return int(size)


def parse_gpu(text: str) -> int:
    """``"1"`` -> 1: a whole number, at most :data:`MAX_GPUS`."""
    match = _GPU.match(text)
    if match is None:
        raise ValueError(f"{shown(text)} is not a GPU count (a whole number such as 0 or 1)")
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > len(str(MAX_GPUS)) or int(digits) > MAX_GPUS:
        raise ValueError(f"{shown(text)} is too many GPUs (at most {MAX_GPUS})")
    return int(digits)


def format_cpu(cores: float) -> str:
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_bytes(size: int) -> str:
    for unit, factor in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def rounded_bytes(size: int) -> str:
    """``20221201612`` -> ``18.8Gi``: rounded, for tables and messages."""
    value = float(size)
    unit = "B"
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or unit == "Ti":
            break
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + unit


def size_for_people(size: int) -> str:
    """``4Gi`` when a unit fits exactly, else ``18.8Gi (20221201612 bytes)``."""
    exact = format_bytes(size)
    return exact if not exact.isdigit() or size < 1024 else f"{rounded_bytes(size)} ({size} bytes)"


def readable_bytes(size: int) -> str:
    """:func:`format_bytes` for messages: ``"4Gi"``, or ``"1000 bytes"`` when no unit fits."""
    text = format_bytes(size)
    return f"{text} bytes" if text.isdigit() else text
