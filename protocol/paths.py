"""The rules for paths inside a task: absolute, no NUL, within Linux's name and path limits.

A task's paths become folders on the compute node, so longer ones are refused at submission
instead of failing the run.
"""

from __future__ import annotations

from typing import Any

from protocol.units import shown

# What Linux file systems take: a name (one path segment) of at most 255 bytes, a path of
# at most 4096.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096


def trimmed(value: Any) -> Any:
    """Bacalhau's Normalize: names, aliases and paths lose surrounding whitespace."""
    return value.strip() if isinstance(value, str) else value


def path_problem(value: str) -> str | None:
    """Why ``value`` is not a usable absolute path inside a task, or None."""
    if not value.startswith("/"):
        return f"{shown(value)} must be an absolute path inside the task"
    if "\x00" in value:
        return "must not contain a NUL character"
    if len(value.encode()) > PATH_MAX_BYTES:
        return f"is {len(value.encode())} bytes long, over the {PATH_MAX_BYTES}-byte path limit"
    for segment in value.split("/"):
        if len(segment.encode()) > NAME_MAX_BYTES:
            return (
                f"has a segment of {len(segment.encode())} bytes ({shown(segment)}), over the "
                f"{NAME_MAX_BYTES}-byte limit of a file name"
            )
    return None
