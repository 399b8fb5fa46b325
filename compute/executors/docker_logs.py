"""A container's stdout and stderr, copied into the results folder while it runs.

Each stream is followed on a thread of its own (the daemon's log stream with ``follow``) and
written to the file of the same name as the daemon hands it over, so the node can serve the
output of a running container as it serves a wasm module's (:mod:`compute.logs`). A follow
ends when the container does; :meth:`LiveLogs.finish` waits for both, and a stream whose
follow failed or did not end (the daemon dropped the connection mid-run) is read back whole,
as it was before streams were followed. A follow that ended may still have ended short (the
daemon closes it at the container's exit, racing its reader): the stream read back whole
replaces it when longer. A file that cannot be written is this node's failure
(retryable), told apart from the daemon's.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from docker.errors import DockerException
from docker.models.containers import Container
from requests.exceptions import RequestException

from protocol.errors import RetryableExecutionError
from protocol.logs import STREAMS

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0  # how long the copies may lag behind the container's exit
# A followed copy up to this size is checked against the stream read back whole once the
# container has exited (a follow may end short of it); a bigger one is kept as followed.
VERIFY_MAX_BYTES = 64 * 1024 * 1024


class _Copy:
    """One stream's copy: the daemon's stream, the file, and how the copy ended."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.lock = threading.Lock()
        self.file: BinaryIO | None = None
        self.stream: Any = None  # docker's CancellableStream, once opened
        self.abandoned = False  # finish() took the file over: the thread writes no more
        self.write_error: OSError | None = None
        self.failed = False  # the daemon's stream broke off
        self.done = threading.Event()
        self.thread: threading.Thread | None = None


class LiveLogs:
    """Copies ``container``'s stdout and stderr into ``results_dir`` while it runs."""

    def __init__(self, container: Container, results_dir: Path) -> None:
        self._container = container
        self._copies = [_Copy(name, results_dir / name) for name in STREAMS]

    def start(self) -> None:
        """Create both files and start following (call once the container has started)."""
        for copy in self._copies:
            try:
                copy.file = copy.path.open("wb", buffering=0)
            except OSError as exc:
                self.close()
                raise RetryableExecutionError(f"cannot write {copy.path}: {exc}") from exc
        for copy in self._copies:
            copy.thread = threading.Thread(
                target=self._follow, args=(copy,), name=f"docker-{copy.name}", daemon=True
            )
            copy.thread.start()

    def _follow(self, copy: _Copy) -> None:
        try:
            copy.stream = self._container.logs(
                stdout=copy.name == "stdout",
                stderr=copy.name == "stderr",
                stream=True,
                follow=True,
            )
            for chunk in copy.stream:
                with copy.lock:
                    if copy.abandoned or copy.file is None:
                        return
                    try:
                        copy.file.write(chunk)
                    except OSError as exc:
                        copy.write_error = exc
                        return
        except Exception as exc:  # the daemon's stream broke off: finish() reads it again
            log.debug("event=docker_log_follow_failed stream=%s error=%r", copy.name, exc)
            copy.failed = True
        finally:
            copy.done.set()

    def finish(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """After the container exited: wait for both copies (``timeout_s`` in all); a copy
        that broke off or did not end is replaced by the stream read back whole."""
        deadline = time.monotonic() + timeout_s
        for copy in self._copies:
            ended = copy.done.wait(max(0.0, deadline - time.monotonic()))
            if copy.write_error is not None:
                self.close()
                raise RetryableExecutionError(f"cannot write {copy.path}: {copy.write_error}")
            self._abandon(copy)
            if ended and not copy.failed:
                self._complete(copy)
                continue
            log.info("event=docker_logs_reread stream=%s ended=%s", copy.name, ended)
            write_log(self._container, copy.name, copy.path)
        self.close()

    def _complete(self, copy: _Copy) -> None:
        """A follow that ended with the container may still have missed its last output (the
        daemon can close it before its reader caught up): read the stream back whole and keep
        that when it is longer. Output over :data:`VERIFY_MAX_BYTES` is kept as followed."""
        followed = copy.path.stat().st_size
        if followed > VERIFY_MAX_BYTES:
            return
        whole = copy.path.with_name(f".{copy.name}.whole")
        try:
            try:
                write_log(self._container, copy.name, whole)
            except (DockerException, RequestException, RetryableExecutionError) as exc:
                log.warning("event=docker_logs_unchecked stream=%s error=%r", copy.name, exc)
                return  # the followed copy stands
            if whole.stat().st_size > followed:
                log.info(
                    "event=docker_logs_completed stream=%s followed=%d whole=%d",
                    copy.name,
                    followed,
                    whole.stat().st_size,
                )
                whole.replace(copy.path)
        finally:
            whole.unlink(missing_ok=True)

    def _abandon(self, copy: _Copy) -> None:
        with copy.lock:
            copy.abandoned = True
            if copy.file is not None:
                copy.file.close()
        _cancel(copy.stream)

    def close(self) -> None:
        """Stop following and close the files (whatever state the copies are in)."""
        for copy in self._copies:
            self._abandon(copy)


def _cancel(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as exc:  # closing a stream the daemon already ended
        log.debug("event=docker_log_close_failed error=%r", exc)


def write_log(container: Container, name: str, path: Path) -> None:
    """Stream ``name`` of an ended container, read whole, into ``path``."""
    chunks = container.logs(stdout=name == "stdout", stderr=name == "stderr", stream=True)
    try:
        file = path.open("wb")
    except OSError as exc:
        raise RetryableExecutionError(f"cannot write {path}: {exc}") from exc
    with file:
        for chunk in chunks:
            try:
                file.write(chunk)
            except OSError as exc:
                raise RetryableExecutionError(f"cannot write {path}: {exc}") from exc
