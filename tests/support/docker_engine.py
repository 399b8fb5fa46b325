"""A real Docker engine for tests: a private ``dockerd`` on a unix socket in a short temp dir,
with a busybox image built from the host's static busybox (no registry needed).

The daemon touches the host as little as it can: no iptables rules, no bridge, no IP
forwarding, its own containerd namespaces. It needs root. Missing ``dockerd``/``busybox``,
no root, or a daemon that cannot start skip the tests locally and fail them in CI.
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.support.services import in_ci, require_binary

IMAGE_REPOSITORY = "local/busybox"
IMAGE_TAG = "1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
MNT_DETACH = 2
ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1 localhost\n",
}


@dataclass
class DockerEngine:
    """A running daemon: ``host`` is its ``unix://`` URL, ``image`` a busybox image on it."""

    root: Path
    process: subprocess.Popen[bytes]
    storage_driver: str
    start_s: float
    image: str = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def client(self, timeout_s: float = 30.0) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="auto", timeout=timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def answers(socket_path: Path) -> bool:
    """``GET /_ping`` by hand (docker-py leaks a socket when it cannot connect)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        except OSError:
            return False
    return reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"OK")


def start_dockerd(dockerd: str, root: Path, storage_driver: str) -> DockerEngine:
    """Start a daemon on ``root``; raise RuntimeError (with its log) when it does not come up."""
    log = (root / "dockerd.log").open("ab")
    started = time.monotonic()
    # The daemon stays in the test run's process group (Ctrl-C and `timeout` reach it) and,
    # with setpriv, gets SIGTERM when the test run dies without its teardown.
    setpriv = shutil.which("setpriv")
    guard = [setpriv, "--pdeathsig", "TERM"] if setpriv else []
    process = subprocess.Popen(
        [
            *guard,
            dockerd,
            f"--host=unix://{root}/docker.sock",
            f"--data-root={root}/data",
            f"--exec-root={root}/exec",
            f"--pidfile={root}/docker.pid",
            f"--storage-driver={storage_driver}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--bridge=none",
            "--containerd-namespace=bacalao-test",
            "--containerd-plugins-namespace=bacalao-test-plugins",
            "--shutdown-timeout=2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    engine = DockerEngine(root, process, storage_driver, start_s=0.0)
    deadline = started + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dockerd ({storage_driver}) exited with {process.returncode}:\n"
                + engine.log_tail()
            )
        if answers(engine.socket):
            engine.start_s = time.monotonic() - started
            return engine
        time.sleep(0.05)
    stop_dockerd(engine)
    raise RuntimeError(
        f"dockerd ({storage_driver}) did not answer within {START_TIMEOUT_S:g}s:\n"
        + engine.log_tail()
    )


def stop_dockerd(engine: DockerEngine) -> None:
    """SIGTERM (the daemon stops its containers and its containerd), then SIGKILL."""
    process = engine.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # A killed daemon leaves its containerd behind.
    containerd_pid = engine.root / "exec" / "containerd" / "containerd.pid"
    with suppress(OSError, ValueError):
        os.kill(int(containerd_pid.read_text().strip()), signal.SIGKILL)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    prefix = str(root)
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_all(root: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for point in mounts_under(root):
        libc.umount2(point.encode(), MNT_DETACH)


def remove_root(root: Path) -> None:
    unmount_all(root)
    shutil.rmtree(root, ignore_errors=True)


def busybox_rootfs(busybox: Path) -> bytes:
    """A tar of a minimal root: /bin/busybox, its applets as links, /tmp, a few /etc files."""
    applets = subprocess.run(
        [str(busybox), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    links = [path.lstrip("/") for path in applets if path.lstrip("/") != "bin/busybox"]
    folders = {"bin", "etc", "tmp", "root", "proc", "sys", "dev", "var", "var/tmp"}
    for link in links:
        parent = Path(link).parent
        folders |= {str(parent), *(str(up) for up in parent.parents if str(up) != ".")}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in sorted(folders):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if folder.endswith("tmp") else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for link in links:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/bin/busybox"
            tar.addfile(info)
        for name, text in ETC_FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def import_busybox(engine: DockerEngine, busybox: Path) -> None:
    client = engine.client()
    try:
        client.api.import_image_from_data(
            busybox_rootfs(busybox), repository=IMAGE_REPOSITORY, tag=IMAGE_TAG
        )
        output = client.containers.run(
            engine.image, ["sh", "-c", "echo ok"], remove=True, network_mode="none"
        )
    finally:
        client.close()
    if output.strip() != b"ok":
        raise RuntimeError(f"the busybox image does not run: {output!r}")


@contextmanager
def docker_engine_running() -> Iterator[DockerEngine]:
    dockerd = require_binary("dockerd")
    busybox = Path(require_binary("busybox")).resolve()
    if os.geteuid() != 0:
        unavailable("dockerd needs root to run (run the tests as root)")
    root = Path(tempfile.mkdtemp(prefix="bdk-", dir="/tmp"))  # unix socket paths are short
    engine: DockerEngine | None = None
    problems = []
    try:
        for driver in ("overlay2", "vfs"):
            try:
                engine = start_dockerd(dockerd, root, driver)
                break
            except RuntimeError as exc:
                problems.append(str(exc))
                remove_root(root)
                root.mkdir(parents=True, exist_ok=True)
        if engine is None:
            unavailable("dockerd cannot start here:\n" + "\n".join(problems))
            return
        try:
            import_busybox(engine, busybox)
        except (docker.errors.DockerException, OSError, RuntimeError) as exc:
            unavailable(
                f"dockerd cannot run a container of {busybox} (is it busybox-static?): "
                f"{exc}\n{engine.log_tail()}"
            )
        yield engine
    finally:
        if engine is not None:
            stop_dockerd(engine)
        remove_root(root)
