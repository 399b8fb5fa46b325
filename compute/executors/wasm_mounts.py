"""What a wasm module sees of its mounts: the entry module's file, and WASI preopened folders.

WASI preopens only folders, so mounts of single files (an inline ``data:`` URL staged at
``/inputs/data.txt``) are gathered by the folder of their target: the files are hard-linked
(copied across file systems) into a scratch folder per run, preopened at that folder
(``/inputs``), read-only unless every file in it is writable. The scratch folder lives for
the run only.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from compute.executors.base import Mount
from protocol.errors import ExecutionError
from protocol.job import InputSource

log = logging.getLogger(__name__)

ENTRY_TARGET_DIR = "/bacalao/entry"
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def guest_path(target: str) -> PurePosixPath:
    """``target`` made absolute and normal: ``inputs/./a//b`` -> ``/inputs/a/b``."""
    return PurePosixPath(posixpath.normpath("/" + target.lstrip("/")))


def entry_target(entry_module: str | InputSource) -> str:
    """Where the entry module is mounted: its own target, or one made up for an embedded
    InputSource that has none (``/bacalao/entry/<alias or main>.wasm``)."""
    if isinstance(entry_module, str):
        return str(guest_path(entry_module))
    if entry_module.target:
        return str(guest_path(entry_module.target))
    name = _UNSAFE_NAME_CHARS.sub("-", entry_module.alias).strip(".-") or "main"
    return f"{ENTRY_TARGET_DIR}/{name}.wasm"


def find_entry_module(target: str, mounts: Sequence[Mount]) -> Path:
    """The host file of the module at ``target``: the source of the mount with exactly that
    target, or the file at the same relative place inside a mounted folder holding it."""
    wanted = guest_path(target)
    best: tuple[PurePosixPath, Mount] | None = None
    for mount in mounts:
        mounted = guest_path(mount.target)
        if mounted == wanted:
            return mount.source if not mount.source.is_dir() else _only_file(target, mount.source)
        if mounted in wanted.parents and (best is None or len(mounted.parts) > len(best[0].parts)):
            best = (mounted, mount)
    if best is None:
        targets = ", ".join(sorted(mount.target for mount in mounts)) or "none"
        raise ExecutionError(
            f"EntryModule {target} is not the Target of any input (input targets: {targets})"
        )
    mounted, mount = best
    candidate = mount.source.joinpath(*wanted.relative_to(mounted).parts)
    root = mount.source.resolve()
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise ExecutionError(f"EntryModule {target} leads outside the input {mount.target}")
    if not resolved.is_file():
        raise ExecutionError(f"EntryModule {target}: no such file in the input {mount.target}")
    return resolved


def _only_file(target: str, folder: Path) -> Path:
    """A folder input at the EntryModule's path (urlDownload stores ``<Target>/<file name>``)
    stands for the one file in it, as in Bacalhau."""
    files = sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    if len(files) == 1 and files[0].is_file() and not files[0].is_symlink():
        return files[0]
    inside = ", ".join(path.name for path in files[:5]) or "nothing"
    raise ExecutionError(
        f"EntryModule {target}: the input mounted there is a folder holding {inside}; "
        "name the module file inside it"
    )


@dataclass(frozen=True)
class Preopen:
    """A host folder the module sees at ``guest_dir``."""

    host_dir: Path
    guest_dir: str
    writable: bool


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def _folder_mounts(mounts: Sequence[Mount]) -> tuple[list[Preopen], dict[str, list[Mount]]]:
    """Folder mounts as preopens, and file mounts grouped by the folder of their target."""
    folders: list[Preopen] = []
    files_by_folder: dict[str, list[Mount]] = {}
    for mount in mounts:
        target = guest_path(mount.target)
        if mount.source.is_dir():
            folders.append(Preopen(mount.source, str(target), writable=not mount.read_only))
        elif mount.source.is_file():
            files_by_folder.setdefault(str(target.parent), []).append(mount)
        else:
            raise ExecutionError(f"mount {mount.target}: {mount.source} does not exist")
    for folder in files_by_folder:
        if any(preopen.guest_dir == folder for preopen in folders):
            raise ExecutionError(
                f"a file is mounted inside {folder}, which is a mounted folder too; "
                "give the file a target outside that folder"
            )
    return folders, files_by_folder


@contextmanager
def preopens(
    mounts: Sequence[Mount], scratch_parent: Path | None = None
) -> Iterator[list[Preopen]]:
    """The preopens for ``mounts``; file mounts are gathered in a scratch folder (under
    ``scratch_parent``, or the system's temporary folder) removed on exit."""
    folders, files_by_folder = _folder_mounts(mounts)
    if not files_by_folder:
        yield folders
        return
    scratch = Path(tempfile.mkdtemp(prefix="bacalao-wasm-files-", dir=scratch_parent))
    try:
        gathered: list[Preopen] = []
        for index, (folder, files) in enumerate(sorted(files_by_folder.items())):
            host_dir = scratch / str(index)
            host_dir.mkdir()
            for mount in files:
                name = guest_path(mount.target).name
                if (host_dir / name).exists():
                    raise ExecutionError(f"two inputs are mounted at {mount.target}")
                _link_or_copy(mount.source, host_dir / name)
            writable = all(not mount.read_only for mount in files)
            gathered.append(Preopen(host_dir, folder, writable))
            log.debug("event=wasm_files_gathered folder=%s count=%d", folder, len(files))
        yield folders + gathered
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
