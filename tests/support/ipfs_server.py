"""A real IPFS node for tests: js-ipfs (npm ``ipfs`` 0.66, an independent implementation of
the Kubo RPC API), installed by ``.ci/setup-ipfs`` into ``tests/support/ipfs/node_modules``.

The daemon runs ``--offline`` with no bootstrap peers, delegates, MDNS or preload, and on top
of that inside a network namespace of its own, so it cannot reach out even if some part of it
tried: the namespace has its loopback and one end of a veth pair on a free /30 of
10.213.0.0/16 (the host end takes the /30's first address, the namespace end the second) and
no default route. The RPC API listens on the namespace's address, the only one the tests'
client side (in the host namespace) can reach; gateway, gRPC and swarm listen on the
namespace's own loopback, so their fixed ports cannot collide with anything.

It needs root (``ip netns``), ``node``, ``ip`` and ``setpriv`` (util-linux: the daemon gets
SIGKILL if the test session dies first); without them the tests skip locally and fail in CI.
Namespaces left by a killed session (their owner PID is gone) are deleted at start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.support.services import in_ci, require_binary
from tests.support.wait import wait_until

SUPPORT = Path(__file__).resolve().parent / "ipfs"
CLI = SUPPORT / "node_modules" / "ipfs" / "src" / "cli.js"
POLYFILL = SUPPORT / "polyfill.js"
API_PORT = 5001
NETNS_PREFIX = "bacalao-ipfs-"
PRIVATE_RANGE = ipaddress.IPv4Network("10.213.0.0/16")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def unavailable(message: str) -> NoReturn:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def _checked_ip(*args: str) -> None:
    done = _ip(*args)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Namespace:
    """A network namespace joined to the host by a veth pair on a /30 and nothing else."""

    name: str
    host_link: str
    host_ip: str
    ns_ip: str

    def delete(self) -> None:
        _ip("link", "del", self.host_link)
        _ip("netns", "del", self.name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_stale_namespaces() -> None:
    """Delete namespaces of ours whose creating process is gone (a killed test session)."""
    listing = _ip("netns", "list").stdout
    for name in re.findall(rf"^({NETNS_PREFIX}(\d+)-([0-9a-f]+))", listing, flags=re.MULTILINE):
        full, pid, token = name
        if not _pid_alive(int(pid)):
            Namespace(full, f"bip{token}h", "", "").delete()


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 in PRIVATE_RANGE that overlaps no address configured on this host."""
    taken = [
        ipaddress.ip_interface(found).network
        for found in re.findall(r"inet (\S+)", _ip("-4", "-o", "addr", "show").stdout)
    ]
    subnets = list(PRIVATE_RANGE.subnets(new_prefix=30))
    for _ in range(100):
        candidate = random.choice(subnets)
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise RuntimeError(f"no free /30 left in {PRIVATE_RANGE}")


def create_namespace() -> Namespace:
    token = secrets.token_hex(3)
    host_ip, ns_ip = (str(address) for address in _free_subnet().hosts())
    namespace = Namespace(f"{NETNS_PREFIX}{os.getpid()}-{token}", f"bip{token}h", host_ip, ns_ip)
    ns_link = f"bip{token}n"
    _checked_ip("netns", "add", namespace.name)
    try:
        _checked_ip("-n", namespace.name, "link", "set", "lo", "up")
        _checked_ip(
            "link", "add", namespace.host_link, "type", "veth",
            "peer", "name", ns_link, "netns", namespace.name,
        )  # fmt: skip
        _checked_ip("addr", "add", f"{host_ip}/30", "dev", namespace.host_link)
        _checked_ip("link", "set", namespace.host_link, "up")
        _checked_ip("-n", namespace.name, "addr", "add", f"{ns_ip}/30", "dev", ns_link)
        _checked_ip("-n", namespace.name, "link", "set", ns_link, "up")
    except BaseException:
        namespace.delete()
        raise
    return namespace


def init_config(api_ip: str) -> dict[str, object]:
    """What ``jsipfs daemon --init-config`` merges into the ``test`` profile's config."""
    return {
        "Addresses": {
            "API": f"/ip4/{api_ip}/tcp/{API_PORT}",
            "Gateway": "/ip4/127.0.0.1/tcp/8080",
            "RPC": "/ip4/127.0.0.1/tcp/5003",
            "Swarm": ["/ip4/127.0.0.1/tcp/4001"],
            "Announce": [],
            "NoAnnounce": [],
            "Delegates": [],
        },
        "Bootstrap": [],
        "Discovery": {"MDNS": {"Enabled": False, "Interval": 10}, "webRTCStar": {"Enabled": False}},
    }


@dataclass
class IPFSNode:
    """A running js-ipfs daemon; its RPC API is at ``api_multiaddr`` / ``api_url``."""

    workdir: Path
    namespace: Namespace
    process: subprocess.Popen[bytes]
    start_s: float = 0.0

    @property
    def api_multiaddr(self) -> str:
        return f"/ip4/{self.namespace.ns_ip}/tcp/{API_PORT}/http"

    @property
    def api_url(self) -> str:
        return f"http://{self.namespace.ns_ip}:{API_PORT}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "jsipfs.log"

    def client(self, timeout_s: float = 30.0) -> Any:
        """An ``ipfshttpclient.Client`` on this node (``connect()`` refuses js-ipfs's version,
        so the client is built directly)."""
        from protocol.ipfs import http_client

        return http_client(self.api_multiaddr, timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def answers(self) -> bool:
        try:
            return httpx.post(f"{self.api_url}/api/v0/id", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM the daemon's process group, SIGKILL it if it lingers."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _start_daemon(workdir: Path, namespace: Namespace, node: str, setpriv: str) -> IPFSNode:
    config = workdir / "init-config.json"
    config.write_text(json.dumps(init_config(namespace.ns_ip)))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "IPFS_PATH": str(workdir / "repo"),
    }
    command = [
        setpriv, "--pdeathsig", "KILL",  # the daemon dies with the test session
        "ip", "netns", "exec", namespace.name,
        node, "--require", str(POLYFILL), str(CLI),
        "daemon", "--offline", "--enable-preload=false",
        "--init-profile", "test", "--init-config", str(config),
    ]  # fmt: skip
    started = time.monotonic()
    with (workdir / "jsipfs.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    daemon = IPFSNode(workdir, namespace, process)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"js-ipfs exited with {process.returncode}")
        return daemon.answers()

    try:
        wait_until(up, START_TIMEOUT_S, 0.05, "the js-ipfs API")
    except (RuntimeError, AssertionError) as exc:
        daemon.stop()
        raise RuntimeError(f"js-ipfs did not start: {exc}\n{daemon.log_tail()}") from None
    daemon.start_s = time.monotonic() - started
    return daemon


@contextmanager
def ipfs_node_running(workdir: Path) -> Iterator[IPFSNode]:
    node = require_binary("node")
    require_binary("ip")
    setpriv = require_binary("setpriv")
    if not CLI.is_file():
        unavailable(f"js-ipfs is not installed in {SUPPORT} (run .ci/setup-ipfs)")
    if os.geteuid() != 0:
        unavailable("the IPFS test node needs root for its network namespace")
    delete_stale_namespaces()
    try:
        namespace = create_namespace()
    except RuntimeError as exc:
        unavailable(f"cannot create a network namespace for the IPFS test node: {exc}")
    try:
        try:
            daemon = _start_daemon(workdir, namespace, node, setpriv)
        except RuntimeError as exc:
            unavailable(str(exc))
        try:
            yield daemon
        finally:
            daemon.stop()
    finally:
        namespace.delete()
