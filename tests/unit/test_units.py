"""protocol.units: sizes and CPU as Bacalhau writes them, and sizes as messages show them."""

from __future__ import annotations

import pytest

from protocol.units import format_bytes, readable_bytes


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0"), (1000, "1000"), (1024, "1Ki"), (5 * 1024**2, "5Mi"), (3 * 1024**3, "3Gi")],
)
def test_format_bytes_uses_the_largest_exact_binary_unit(size: int, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1000, "1000 bytes"), (2048, "2Ki"), (4 * 1024**3, "4Gi")],
)
def test_readable_bytes_says_bytes_when_no_unit_fits(size: int, text: str) -> None:
    assert readable_bytes(size) == text
