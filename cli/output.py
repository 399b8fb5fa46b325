"""Where output goes: data on stdout (table, JSON or YAML), everything else on stderr."""

from __future__ import annotations

import enum
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console, RenderableType
from rich.text import Text

from protocol.units import rounded_bytes

OUTPUT_PANEL = "Output"
PIPED_WIDTH = 200


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        help="How to print: a table for people, or the API's own JSON or YAML for scripts.",
        case_sensitive=False,
        rich_help_panel=OUTPUT_PANEL,
    ),
]
WideOption = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Show full IDs and untruncated values in tables.",
        rich_help_panel=OUTPUT_PANEL,
    ),
]


def stdout_console() -> Console:
    """Tables fit the terminal; piped into another program they are not cut at 80 columns."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=PIPED_WIDTH)
    return console


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stderr_is_terminal() -> bool:
    return stderr_console().is_terminal


def write_stdout(text: str) -> None:
    """Exactly ``text`` on stdout: no styling, no added newline, nothing stripped."""
    sys.stdout.write(text)
    sys.stdout.flush()


def write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def print_error(message: str) -> None:
    """The one red line a failure ends with."""
    stderr_console().print(Text(f"Error: {message}", style="red"))


def print_warning(message: str) -> None:
    stderr_console().print(Text(f"Warning: {message}", style="yellow"))


def print_note(message: str, style: str = "") -> None:
    stderr_console().print(Text(message, style=style))


def dump(data: Any, fmt: OutputFormat) -> str:
    """``data`` (wire-shaped: dicts, lists, strings, numbers) as JSON or YAML text."""
    if fmt is OutputFormat.JSON:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def emit(
    fmt: OutputFormat, data: Callable[[], Any], renderables: Callable[[], list[RenderableType]]
) -> None:
    """Print JSON/YAML of ``data()``, or the ``renderables()`` for a table."""
    if fmt is OutputFormat.TABLE:
        console = stdout_console()
        for renderable in renderables():
            console.print(renderable)
    else:
        write_stdout(dump(data(), fmt))


def short_id(identifier: str, wide: bool = False) -> str:
    """``j-0f6c2a8e-...`` -> ``j-0f6c2a8e``, as Bacalhau shows IDs in tables."""
    if wide:
        return identifier
    prefix, dash, rest = identifier.partition("-")
    if dash and len(prefix) == 1:
        return f"{prefix}-{rest[:8]}"
    return identifier[:10]


def format_time(time_ns: int) -> str:
    """Unix nanoseconds as local time; ``-`` when unset."""
    if not time_ns:
        return "-"
    return datetime.fromtimestamp(time_ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def human_bytes(size: int) -> str:
    """``20221201612`` -> ``18.8Gi``: rounded, for tables (the JSON keeps exact bytes)."""
    return rounded_bytes(size)


def format_mapping(values: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" if value else key for key, value in values.items())
