"""A real RabbitMQ broker for tests, on free loopback ports, stopped by PID.

Debian's ``/usr/sbin/rabbitmq-server`` switches to the ``rabbitmq`` user, so the server is
started from ``/usr/lib/rabbitmq/bin`` with every path (database, logs, config, plugins and the
Erlang cookie via ``HOME``) under a temporary folder. Its port mapper (epmd) is started first,
as our own child on a free port, so the broker registers with it instead of spawning a daemon
we would have to hunt for. A broker can be restarted on the same ports and database, which is
what durability and reconnect tests need.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from kombu.connection import Connection

from tests.support.services import free_port, in_ci, port_open, require_binary
from tests.support.wait import wait_until

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def require_rabbitmq() -> Path:
    """The folder with ``rabbitmq-server`` and ``rabbitmqctl``; skip (fail in CI) without it."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        message = "rabbitmq-server is not installed (.ci/run installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return RABBITMQ_BIN


@dataclass
class RabbitMQServer:
    workdir: Path
    bin_dir: Path
    epmd_binary: str
    name: str = field(default_factory=lambda: f"bacalao-{secrets.token_hex(4)}@localhost")
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.workdir),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the broker and return once a kombu connection to it works."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rabbitmq.conf").write_text("loopback_users = none\n")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        self._start_epmd()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "rabbitmq-server")],
                env=self.env(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._accepts_amqp, timeout_s, interval_s=0.2, message=f"rabbitmq {self.name}")

    def stop(self) -> None:
        """Stop the broker (not epmd) and check its ports are closed."""
        process = self.process
        if process is None:
            return
        self.process = None
        if process.poll() is None:
            descendants = psutil.Process(process.pid).children(recursive=True)
            self.ctl("stop", check=False)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for child in descendants:
                if child.is_running():
                    child.kill()
        wait_until(
            lambda: not port_open(self.port) and not port_open(self.dist_port),
            10,
            message=f"rabbitmq {self.name} ports to close",
        )

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Stop and start again on the same ports and database."""
        self.stop()
        self.start(timeout_s)

    def close(self) -> None:
        """Stop the broker and its epmd; nothing of it is left listening."""
        try:
            self.stop()
        finally:
            epmd, self.epmd = self.epmd, None
            if epmd is not None and epmd.poll() is None:
                epmd.terminate()
                try:
                    epmd.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    epmd.kill()
                    epmd.wait()
        wait_until(lambda: not port_open(self.epmd_port), 10, message="epmd port to close")

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Suspend the broker's VM (SIGSTOP): connections stay open but nothing answers."""
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        vm = [child for child in children if child.name().startswith("beam")]
        assert vm, "no Erlang VM under the rabbitmq-server process"
        for process in vm:
            process.suspend()
        try:
            yield
        finally:
            for process in vm:
                process.resume()

    def ctl(self, *args: str, check: bool = True) -> str:
        """Run ``rabbitmqctl`` against this node and return its output."""
        result = subprocess.run(
            [str(self.bin_dir / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    # -- helpers -------------------------------------------------------------------------

    def _start_epmd(self) -> None:
        if self.epmd is not None and self.epmd.poll() is None:
            return
        self.epmd = subprocess.Popen(
            [self.epmd_binary, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.epmd_port), 10, message="epmd")

    def _accepts_amqp(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise AssertionError(f"rabbitmq exited with {self.process.returncode}:\n{tail}")
        if not port_open(self.port):
            return False
        connection = Connection(self.url, connect_timeout=2)
        try:
            connection.ensure_connection(max_retries=1)
        except Exception:
            return False
        finally:
            connection.release()
        return True


@contextmanager
def rabbitmq_server(workdir: Path) -> Iterator[RabbitMQServer]:
    """A started broker, closed at the end (skips locally, fails in CI, when not installed)."""
    server = RabbitMQServer(workdir, require_rabbitmq(), require_binary("epmd"))
    try:
        server.start()
        yield server
    finally:
        server.close()
