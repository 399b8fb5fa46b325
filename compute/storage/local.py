"""``local`` storage (Bacalhau's ``localDirectory``): mount an allow-listed host path as is.

Nothing is copied. The operator allow-lists folders, as Bacalhau's
``--allow-listed-local-paths /data:rw``: an entry is a path with an optional ``:ro`` (the
default) or ``:rw`` suffix, and a trailing ``/**`` is accepted for Bacalhau's glob spelling
of "this folder and everything under it". A source is allowed only when its real path
(symlinks and ``..`` resolved) is under the real path of an entry, and a ``ReadWrite`` source
only under an entry that allows read-write. A missing read-write path with ``CreateAs: dir``
or ``file`` is made (an empty folder, or an empty file in new folders) when the task is
staged, as Bacalhau does; a node bids on it as if it had it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from compute.executors.base import Mount
from protocol.errors import ExecutionError, ValidationError
from protocol.job import InputSource, SourceSpec
from protocol.specs.sources import CREATE_DIR, LocalParams

log = logging.getLogger(__name__)

DEFAULT_SIZE_WALK_MAX_FILES = 10_000


@dataclass(frozen=True)
class AllowedPath:
    path: Path
    read_write: bool = False

    def __str__(self) -> str:
        return f"{self.path}:{'rw' if self.read_write else 'ro'}"


def parse_allowed_path(entry: str | Path) -> AllowedPath:
    """``/data:rw`` -> AllowedPath(/data, read_write=True); ``/data``, ``/data:ro`` read-only.

    The path is made absolute and resolved (symlinks, ``..``) so that comparisons are between
    real paths. A relative entry is refused: it would depend on the node's working folder.
    """
    text = str(entry).strip()
    read_write = False
    if text.endswith((":rw", ":ro")):
        read_write = text.endswith(":rw")
        text = text[:-3]
    text = text.removesuffix("/**") or "/"
    if not text.startswith("/"):
        raise ValidationError("allowed_local_paths", f"{text!r} must be an absolute path")
    return AllowedPath(Path(text).resolve(), read_write)


def _params(spec: SourceSpec) -> LocalParams:
    try:
        return spec.params_as(LocalParams, "Source")
    except ValidationError as exc:
        raise ExecutionError(f"local: {exc}") from None


class LocalStorage:
    """Mounts allow-listed host paths directly; installed when anything is allowed."""

    def __init__(
        self,
        allowed_paths: Sequence[Path | str] = (),
        size_walk_max_files: int = DEFAULT_SIZE_WALK_MAX_FILES,
    ) -> None:
        self.allowed_paths = tuple(parse_allowed_path(entry) for entry in allowed_paths)
        self.size_walk_max_files = size_walk_max_files

    @property
    def type(self) -> str:
        return "local"

    def is_installed(self) -> bool:
        return bool(self.allowed_paths)

    def resolve(self, params: LocalParams) -> Path:
        """The real path of the source; ExecutionError when no entry allows it."""
        real = Path(params.source_path).resolve()
        covering = [entry for entry in self.allowed_paths if real.is_relative_to(entry.path)]
        if not covering:
            raise ExecutionError(
                f"local: {params.source_path!r} is not under an allow-listed path "
                f"(allowed: {', '.join(map(str, self.allowed_paths)) or 'none'})"
            )
        if params.read_write and not any(entry.read_write for entry in covering):
            raise ExecutionError(
                f"local: {params.source_path!r} is allow-listed read-only; ReadWrite needs "
                f"an entry ending in ':rw' (allowed: {', '.join(map(str, covering))})"
            )
        return real

    def has_locally(self, spec: SourceSpec) -> bool:
        try:
            params = _params(spec)
            return self.resolve(params).exists() or params.creatable
        except ExecutionError:
            return False

    def size_bytes(self, spec: SourceSpec) -> int | None:
        """Total size of the files under the path; None past ``size_walk_max_files``."""
        try:
            root = self.resolve(_params(spec))
        except ExecutionError:
            return None
        if root.is_file():
            return root.stat().st_size
        total_bytes = 0
        files_seen = 0
        for folder, _dirs, files in os.walk(root):
            for name in files:
                files_seen += 1
                if files_seen > self.size_walk_max_files:
                    return None
                try:
                    total_bytes += (Path(folder) / name).lstat().st_size
                except OSError:
                    continue
        return total_bytes

    def prepare(self, source: InputSource, staging_dir: Path) -> Mount:
        params = _params(source.source)
        real = self.resolve(params)
        if not real.exists():
            if not params.creatable:
                raise ExecutionError(
                    f"local: {params.source_path!r} does not exist on this node (to have it "
                    "made, set ReadWrite: true and CreateAs: dir or file)"
                )
            _create(params, real)
        log.info(
            "event=local_mounted path=%s target=%s read_write=%s",
            real,
            source.target,
            params.read_write,
        )
        return Mount(source=real, target=source.target, read_only=not params.read_write)


def _create(params: LocalParams, real: Path) -> None:
    """Make the missing ``real`` as ``params.create_as`` says; a path that another run made
    meanwhile is used as it is."""
    try:
        if params.create_as == CREATE_DIR:
            real.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif params.source_path.endswith("/"):
            raise ExecutionError(
                f"local: {params.source_path!r} names a folder, but CreateAs is file"
            )
        else:
            real.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with suppress(FileExistsError):
                real.touch(mode=0o600, exist_ok=False)
    except OSError as exc:
        raise ExecutionError(
            f"local: cannot create {params.source_path!r}: {exc.strerror or exc}"
        ) from None
    log.info("event=local_created path=%s as=%s", real, params.create_as)
