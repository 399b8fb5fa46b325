"""The copy of a container's output: a follow that ends short of the output (the daemon
closed it at the container's exit before its reader caught up) is completed from the stream
read back whole. The daemon is a stand-in here; tests/integration/test_docker_logs.py runs a
real one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from docker.errors import APIError
from docker.models.containers import Container

from compute.executors.docker_logs import LiveLogs

WHOLE = b"".join(b"%d\n" % n for n in range(1, 30001))


class Daemon:
    """A container's log streams: the follow gives ``followed`` of each, a read gives all."""

    def __init__(self, followed: int, reads_fail: bool = False) -> None:
        self.followed = followed
        self.reads_fail = reads_fail

    def logs(self, *, stdout: bool, stderr: bool, stream: bool, follow: bool = False) -> Any:
        assert stream
        data = WHOLE if stdout else b"err\n"
        if not follow and self.reads_fail:
            raise APIError("the daemon went away")
        return _chunks(data[: self.followed] if follow and stdout else data)


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


def copied(tmp_path: Path, daemon: Daemon) -> bytes:
    logs = LiveLogs(cast(Container, daemon), tmp_path)
    logs.start()
    logs.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stderr", "stdout"]  # no leftovers
    assert (tmp_path / "stderr").read_bytes() == b"err\n"
    return (tmp_path / "stdout").read_bytes()


def test_a_follow_that_ended_short_is_completed_from_the_whole_stream(tmp_path: Path) -> None:
    assert copied(tmp_path, Daemon(followed=100_000)) == WHOLE


def test_a_whole_follow_is_kept(tmp_path: Path) -> None:
    assert copied(tmp_path, Daemon(followed=len(WHOLE))) == WHOLE


def test_a_daemon_that_cannot_read_back_leaves_the_followed_copy(tmp_path: Path) -> None:
    assert copied(tmp_path, Daemon(followed=100_000, reads_fail=True)) == WHOLE[:100_000]
