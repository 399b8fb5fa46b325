"""Processes a benchmark starts: free loopback ports, start, wait, CPU time, stop by PID.

Every process runs in its own session, so a Ctrl-C reaches only the benchmark, which then
stops what it started (SIGTERM, then SIGKILL), each by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

import redis

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TICK_MS = 1000 / _CLOCK_TICKS  # the resolution of cpu_ms
_STOP_GRACE_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on right now on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str:
    """``name`` next to this Python (the console scripts of its environment), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} is not installed (not beside {sys.executable}, not on PATH)"
        )
    return found


def cpu_ms(pid: int) -> float:
    """CPU time of a process so far, user + system, its own and its waited-for children's
    (``/proc/<pid>/stat`` utime, stime, cutime, cstime), in milliseconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state) of proc(5): utime..cstime are fields 14..17
    ticks = sum(int(value) for value in fields[11:15])
    return ticks * 1000.0 / _CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (``VmRSS`` of ``/proc/<pid>/status``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0  # a zombie has no memory left


@dataclass
class Started:
    """One process this benchmark started."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}; its log ends:\n{self.log_tail()}")


class Processes:
    """The processes started so far; :meth:`stop` ends them (latest first) by PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Started] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Started:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        process = Started(name=name, popen=popen, log=log)
        self.started.append(process)
        return process

    def stop(self, *names: str) -> None:
        """Stop the named processes (all of them when none is named), latest first."""
        chosen = [p for p in reversed(self.started) if not names or p.name in names]
        for process in chosen:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for process in chosen:
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.popen.wait()
            self.started.remove(process)


def _signal(process: Started, signum: signal.Signals) -> None:
    if process.popen.poll() is None:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def wait_until(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout_s: float,
    watch: Sequence[Started] = (),
    interval_s: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something other than None; fail at the deadline or as
    soon as one of the ``watch`` processes has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        for process in watch:
            process.check_alive()
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        time.sleep(interval_s)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def _handling(handler: signal.Handlers | Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = [signal.signal(signum, handler) for signum in _STOP_SIGNALS]
    try:
        yield
    finally:
        for signum, before in zip(_STOP_SIGNALS, previous, strict=True):
            signal.signal(signum, before)


def interruptible() -> AbstractContextManager[None]:
    """Within the block, SIGINT (Ctrl-C, even when started in the background with SIGINT
    ignored) and SIGTERM raise KeyboardInterrupt, so that cleanup runs."""
    return _handling(_raise_interrupt)


def uninterrupted() -> AbstractContextManager[None]:
    """Within the block, SIGINT and SIGTERM are ignored: a second Ctrl-C cannot cut short
    the stopping of what was started."""
    return _handling(signal.SIG_IGN)


def start_redis(procs: Processes, port: int) -> tuple[Started, redis.Redis]:
    """redis-server on ``port`` (loopback, no persistence), once it answers."""
    server = procs.start(
        "redis",
        [
            *(executable("redis-server"), "--port", str(port)),
            *("--bind", LOOPBACK, "--save", "", "--appendonly", "no"),
        ],
    )
    client = redis.Redis(host=LOOPBACK, port=port)

    def answers() -> bool | None:
        try:
            return bool(client.ping()) or None
        except redis.ConnectionError:
            return None

    wait_until(answers, what="redis-server answering", timeout_s=20, watch=[server])
    return server, client
