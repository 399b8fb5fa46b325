"""Processes for ``bench.scale``: a loopback redis-server, a requester, simulated-node
workers; their CPU from ``/proc`` and Redis's own counters. Every process started here is
stopped by its PID (SIGTERM, then SIGKILL after a grace period)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_RUN_CLI = "import sys; from cli.main import main; sys.argv[0] = 'bacalao'; sys.exit(main())"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2
) -> None:
    """Poll ``check`` until it holds; TimeoutError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(every_s)


def cpu_ms(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, in milliseconds; 0 once it
    is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the name in () may hold spaces
    return (int(fields[11]) + int(fields[12])) * 1000.0 / CLOCK_TICKS


@dataclass
class Child:
    """A process started here, with the log file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start(name: str, argv: Sequence[str], log_path: Path, cwd: Path | None = None) -> Child:
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd
        )
    except BaseException:
        log.close()
        raise
    return Child(name, process, log_path, log)


def ensure_alive(child: Child) -> None:
    if not child.alive():
        raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{child.tail()}")


# -- redis ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisFigures:
    commands: int
    cpu_ms: float
    by_command: dict[str, int] = field(default_factory=dict)


class RedisServer:
    def __init__(self, child: Child, port: int) -> None:
        self.child = child
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)

    @classmethod
    def launch(cls, folder: Path) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(folder)]
        server = cls(start("redis-server", argv, folder / "redis.log"), port)
        wait_until(server.answers, 20, f"redis-server on port {port}", every_s=0.05)
        return server

    def answers(self) -> bool:
        ensure_alive(self.child)
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def figures(self) -> RedisFigures:
        """Commands processed so far (these calls' two INFOs included), by command, and
        CPU used."""
        info = self.client.info()
        stats = self.client.info("commandstats")
        cpu_s = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        by_command = {
            name.removeprefix("cmdstat_"): int(value["calls"])
            for name, value in stats.items()
            if isinstance(value, dict)
        }
        return RedisFigures(int(info["total_commands_processed"]), cpu_s * 1000, by_command)

    def flush(self) -> None:
        self.client.flushall()

    def stop(self) -> None:
        self.client.close()
        self.child.stop()


# -- the requester and the workers -------------------------------------------------------


def requester_argv(broker: str, api_port: int, data_dir: Path, options: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-c",
        _RUN_CLI,
        "serve",
        "--node-type",
        "requester",
        "--broker",
        broker,
        "--api-port",
        str(api_port),
        "--data-dir",
        str(data_dir),
        *options,
    ]


def worker_argv(broker: str, nodes: int, folder: Path, options: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.scale_worker",
        "--broker",
        broker,
        "--nodes",
        str(nodes),
        "--ready-file",
        str(folder / "ready"),
        "--stats-file",
        str(folder / "stats.json"),
        *options,
    ]


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
