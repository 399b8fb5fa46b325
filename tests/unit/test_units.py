"""protocol.units: sizes and CPU as Bacalhau writes them, and sizes as messages show them."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from protocol.resources import Resources
from protocol.units import (
    MAX_CPU_CORES,
    format_bytes,
    parse_bytes,
    parse_cpu,
    parse_gpu,
    readable_bytes,
    rounded_bytes,
    size_for_people,
)

INT64_MAX = 2**63 - 1


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


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("2", 2.0), (".5", 0.5), (" 1.5 ", 1.5), (str(MAX_CPU_CORES), 65536.0)],
)
def test_parse_cpu(text: str, value: float) -> None:
    assert parse_cpu(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512Mb", 512_000_000),
        ("1Gi", 1024**3),
        ("1.5Ki", 1536),
        ("0.5", 0),
        (str(INT64_MAX), INT64_MAX),
        ("8388608Ti", 2**63),
    ],
)
def test_parse_bytes(text: str, value: int) -> None:
    if value > INT64_MAX:
        with pytest.raises(ValueError, match="too large"):
            parse_bytes(text)
    else:
        assert parse_bytes(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "words"),
    [
        (parse_bytes, "1" * 400, "'111111111111111111111111'… (400 characters) is too large"),
        (parse_bytes, str(2**63), "is too large (at most 9223372036854775807 bytes, 8 EiB)"),
        (parse_bytes, "1" * 10_000, "(10000 characters) is too large"),
        (parse_cpu, "1" * 400, "(400 characters) is more CPU than a machine has"),
        (parse_cpu, "65537", "'65537' is more CPU than a machine has (at most 65536 cores)"),
        (parse_cpu, "65536001m", "more CPU than a machine has"),
        (parse_gpu, "1" * 30, "(30 characters) is too many GPUs (at most 9223372036854775807)"),
        (parse_gpu, str(2**63), "is too many GPUs"),
        (parse_gpu, "1" * 10_000, "is too many GPUs"),
        (parse_cpu, "\u0661", "is not a CPU quantity"),  # a non-ASCII digit
        (parse_bytes, "\u0661Gi", "is not a size"),
        (parse_gpu, "\u0661", "is not a GPU count"),
        (parse_gpu, "1.0", "is not a GPU count"),
    ],
)
def test_parsers_refuse_huge_or_odd_amounts_with_value_error(
    parse: Callable[[str], object], text: str, words: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        parse(text)


def test_parse_gpu_takes_leading_zeros_like_parse_uint() -> None:
    assert parse_gpu("0" * 5000 + "2") == 2
    assert parse_gpu(str(INT64_MAX)) == INT64_MAX


def test_sizes_in_messages_are_readable_whole_units_or_rounded() -> None:
    assert rounded_bytes(20221201612) == "18.8Gi"
    assert rounded_bytes(512) == "512B"
    assert size_for_people(4 * 1024**3) == "4Gi"
    assert size_for_people(1000) == "1000"
    assert size_for_people(20221201612) == "18.8Gi (20221201612 bytes)"
    too_big = Resources(memory=500 * 1024**3).exceeding(Resources(memory=20221201612))
    assert too_big == ["memory 500Gi > 18.8Gi (20221201612 bytes)"]
