"""A throw-away PostgreSQL server from Debian's ``postgresql`` package, on a free loopback
port with its data dir under /tmp, stopped by PID.

initdb and postgres refuse to run as root: as root, both run as the ``postgres`` user the
package creates (``Popen(user=...)``, no su/PAM), in a data dir that user owns. Missing
binaries skip the test locally and fail it when ``CI`` is set (.ci/run installs them).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.support.services import free_port, in_ci, port_open
from tests.support.wait import wait_until

DEBIAN_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
SERVICE_USER = "postgres"
SUPERUSER = "bacalao"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def _missing(message: str) -> None:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_postgres() -> Path:
    """The directory with initdb and postgres (Debian keeps them off PATH)."""
    candidates = [Path(d) for d in DEBIAN_BIN_DIRS]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.insert(0, Path(on_path).parent)
    for bin_dir in candidates:
        if (bin_dir / "initdb").exists() and (bin_dir / "postgres").exists():
            return bin_dir
    _missing("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    raise AssertionError("unreachable")


def _run_as() -> str | None:
    """The user the server runs as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        _missing(f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as")
    return SERVICE_USER


@dataclass
class PostgresServer:
    bin_dir: Path
    port: int
    workdir: Path
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    user: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            for path in (self.workdir, pwfile):
                shutil.chown(path, self.user, self.user)
        subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
             f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
             "--no-sync"],
            user=self.user,
            cwd=self.workdir,
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                 "-h", "127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                user=self.user,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._accepts, START_TIMEOUT_S, interval_s=0.1, message="postgres to start")

    def _accepts(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"postgres exited: {self.log_path.read_text()[-2000:]}")
        if not port_open(self.port):
            return False
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster); SIGKILL if it does not end in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = require_postgres()
    user = _run_as()
    # not under pytest's tmp dir: as root that is private to root, and postgres must own its
    workdir = Path(tempfile.mkdtemp(prefix="bacalao-pg-"))
    server = PostgresServer(bin_dir=bin_dir, port=free_port(), workdir=workdir, user=user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
