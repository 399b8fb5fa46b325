"""A progress bar on stderr for result downloads, shown only when stderr is a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cli.output import stderr_console
from protocol.results import TransferProgress


class BarProgress:
    """One bar per download; ``advance`` may be called from the transfer threads."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def start(self, description: str, total_bytes: int | None) -> None:
        self._task = self._progress.add_task(description, total=total_bytes)

    def advance(self, n_bytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n_bytes)


@contextmanager
def download_progress(console: Console | None = None) -> Iterator[TransferProgress | None]:
    """A :class:`BarProgress` while the block runs, or None when nobody would see it."""
    console = console or stderr_console()
    if not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield BarProgress(progress)
