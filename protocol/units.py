"""Resource quantities as Bacalhau writes them: CPU in Kubernetes units, sizes humanized."""

from __future__ import annotations

import re

_CPU = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(m?)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")
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


def parse_cpu(text: str) -> float:
    """``"500m"`` -> 0.5, ``"2"`` -> 2.0. Raises ValueError with a readable message."""
    match = _CPU.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a CPU quantity (examples: 500m, 0.5, 2)")
    value = float(match.group(1))
    return value / 1000 if match.group(2) else value


def parse_bytes(text: str) -> int:
    """``"512Mb"`` -> 512_000_000, ``"1Gi"`` -> 1_073_741_824, ``"1024"`` -> 1024."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 512Mb, 1Gi, 2GB, 1048576)")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_gpu(text: str) -> int:
    stripped = text.strip()
    if not stripped.isdigit():
        raise ValueError(f"{text!r} is not a GPU count (a whole number such as 0 or 1)")
    return int(stripped)


def format_cpu(cores: float) -> str:
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_bytes(size: int) -> str:
    for unit, factor in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def readable_bytes(size: int) -> str:
    """:func:`format_bytes` for messages: ``"4Gi"``, or ``"1000 bytes"`` when no unit fits."""
    text = format_bytes(size)
    return f"{text} bytes" if text.isdigit() else text
